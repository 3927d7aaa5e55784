"""Shared fixtures: the app on a fresh database, clients, and logged-in users."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask_migrate import upgrade

from app import create_app
from app.extensions import db

pytest_plugins = ["tests.weights_fixtures"]

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "photos"
PASSWORD = "correct horse battery"


def photo_bytes(name: str = "dog.jpg") -> bytes:
    """Bytes of one of the real photos in ../shared/photos."""
    return (PHOTOS / name).read_bytes()


def make_app(tmp_path: Path, service_config, **overrides):
    """A fresh app: SQLite file built through the migrations, storage in ``tmp_path``,
    random-weight test checkpoints (allowed, and flagged "unverified" in results)."""
    app = create_app({
        "TESTING": True,
        "SECRET_KEY": "test",
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'test.db'}",
        "STORAGE_DIR": str(tmp_path / "storage"),
        "INFERENCE": service_config,
        "RATELIMIT_ENABLED": False,  # tests/security turns the limits on where it tests them
        **overrides,
    })
    with app.app_context():
        upgrade()
    return app


@pytest.fixture
def app(tmp_path, service_config):
    """A fresh app (see :func:`make_app`)."""
    app = make_app(tmp_path, service_config)
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def client(app):
    """A test client (cookies kept between requests)."""
    return app.test_client()


@pytest.fixture
def runner(app):
    """A CLI runner for ``flask`` commands."""
    return app.test_cli_runner()


def csrf_token(client, path: str = "/") -> str:
    """Read the CSRF token from the page's <meta name="csrf-token">, as the pages' JS does."""
    html = client.get(path).get_data(as_text=True)
    match = re.search(r'<meta name="csrf-token" content="([^"]+)"', html)
    assert match, f"no csrf-token meta tag on {path}"
    return match.group(1)


class AuthActions:
    """Register, log in and log out through the real forms (with CSRF tokens)."""

    def __init__(self, client) -> None:
        self.client = client

    def register(self, email: str = "parent@example.com", password: str = PASSWORD,
                 confirm: str | None = None):
        token = csrf_token(self.client, "/register")
        return self.client.post("/register", data={
            "email": email, "password": password, "confirm": confirm or password,
            "csrf_token": token})

    def login(self, email: str = "parent@example.com", password: str = PASSWORD,
              remember: bool = False):
        token = csrf_token(self.client, "/login")
        data = {"email": email, "password": password, "csrf_token": token}
        if remember:
            data["remember"] = "y"
        return self.client.post("/login", data=data)

    def logout(self):
        token = csrf_token(self.client, "/logout")
        return self.client.post("/logout", data={"csrf_token": token})

    def api_headers(self) -> dict[str, str]:
        """Headers for state-changing API calls: the CSRF token from a page."""
        return {"X-CSRFToken": csrf_token(self.client, "/")}


@pytest.fixture
def auth(client):
    """AuthActions on the default client."""
    return AuthActions(client)


@pytest.fixture
def make_client(app):
    """Factory of independent logged-in clients: ``make_client(email)``."""

    def make(email: str):
        c = app.test_client()
        actions = AuthActions(c)
        assert actions.register(email).status_code == 302
        return c, actions

    return make
