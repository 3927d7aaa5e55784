"""Fixtures of the deploy tests: real PostgreSQL, Redis and S3-compatible servers on loopback
(started once per session), and apps configured to use them."""

from __future__ import annotations

import io

import pytest

from app.extensions import db
from tests.conftest import AuthActions, photo_bytes
from tests.conftest import make_app as make_test_app
from tests.deploy import services


@pytest.fixture(scope="session")
def postgres():
    """URL of a throwaway PostgreSQL server (``postgresql://postgres@127.0.0.1:<port>``)."""
    with services.postgres_server() as url:
        yield url


@pytest.fixture(scope="session")
def redis_server():
    """URL of a throwaway redis-server (``redis://127.0.0.1:<port>/0``)."""
    with services.redis_server() as url:
        yield url


@pytest.fixture(scope="session")
def s3_endpoint():
    """Endpoint URL of a throwaway S3-compatible server (moto)."""
    with services.s3_server() as url:
        yield url


@pytest.fixture
def pg_url(postgres):
    """SQLAlchemy URL of a new, empty PostgreSQL database."""
    return services.create_database(postgres)


@pytest.fixture
def redis_url(redis_server):
    """The Redis server, emptied."""
    from redis import Redis

    client = Redis.from_url(redis_server)
    client.flushall()
    client.close()
    return redis_server


@pytest.fixture
def s3_config(s3_endpoint):
    """App settings for a new, empty bucket on the S3-compatible server."""
    return {"S3_BUCKET": services.create_bucket(s3_endpoint), "S3_ENDPOINT_URL": s3_endpoint,
            **services.S3_CREDENTIALS}


@pytest.fixture
def make_app(tmp_path, service_config):
    """Factory of test apps: ``make_app(**config)`` is :func:`tests.conftest.make_app` (the
    migrations run; SQLite in ``tmp_path`` unless SQLALCHEMY_DATABASE_URI says otherwise, so
    two apps made in one test share it), e.g. with REDIS_URL or S3_BUCKET; engines are
    disposed at the end."""
    apps = []

    def make(**config):
        app = make_test_app(tmp_path, service_config, **config)
        apps.append(app)
        return app

    yield make
    for app in apps:
        with app.app_context():
            db.engine.dispose()


@pytest.fixture(scope="session")
def service(service_config):
    """One inference service on the random-weight checkpoints (models load on first use)."""
    from models.service import InferenceService

    return InferenceService(service_config)


class Parent:
    """A registered user of a test app who uploads photos through the JSON API."""

    def __init__(self, app, email: str = "parent@example.com") -> None:
        self.client = app.test_client()
        self.auth = AuthActions(self.client)
        assert self.auth.register(email).status_code == 302

    def upload(self, name: str = "dog.jpg", mode: str = "grounded", prompt: str = "dog") -> dict:
        """POST /api/v1/photos; returns ``{"photo_id", "job_id"}`` (asserts 202)."""
        data = {"mode": mode, "image": (io.BytesIO(photo_bytes(name)), name)}
        if mode == "grounded":
            data["prompt"] = prompt
        response = self.client.post("/api/v1/photos", data=data, headers=self.auth.api_headers())
        assert response.status_code == 202, response.get_json()
        return response.get_json()
