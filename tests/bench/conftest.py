"""The benchmark tests use the model tests' fixtures (random-weight service, photos)."""

from tests.models.conftest import service  # noqa: F401
