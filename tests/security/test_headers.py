"""Security headers, CSP-clean pages, cookie flags, and the production SECRET_KEY rule."""

import re

import pytest

from app import create_app
from tests.conftest import PASSWORD

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
INLINE_HANDLER = re.compile(r"\son[a-z]+\s*=", re.IGNORECASE)
STYLE_ATTR = re.compile(r"\sstyle\s*=", re.IGNORECASE)


def pages(client, auth):
    """Every page a user can reach, logged out and logged in (as an admin, to see /admin)."""
    out = {p: client.get(p) for p in ("/", "/login", "/register", "/nowhere")}
    auth.register()
    out |= {p: client.get(p) for p in ("/", "/library", "/logout")}
    return out


def test_every_page_has_a_strict_csp_it_satisfies(client, auth):
    for path, response in pages(client, auth).items():
        csp = response.headers.get("Content-Security-Policy", "")
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp, path
        assert "'unsafe-eval'" not in csp, path  # WebAssembly only: 'wasm-unsafe-eval'
        assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp, path
        assert response.headers["X-Content-Type-Options"] == "nosniff", path
        assert response.headers["X-Frame-Options"] == "DENY", path
        assert response.headers["Referrer-Policy"] == "same-origin", path
        # Cross-origin isolated, so the tap decoder may use WebAssembly threads.
        assert response.headers["Cross-Origin-Opener-Policy"] == "same-origin", path
        assert response.headers["Cross-Origin-Embedder-Policy"] == "require-corp", path
        html = response.get_data(as_text=True)
        assert not INLINE_SCRIPT.search(html), (path, INLINE_SCRIPT.search(html))
        assert not INLINE_HANDLER.search(html), path
        assert not STYLE_ATTR.search(html), path


def test_session_and_remember_cookies_are_httponly_and_lax(client, auth):
    auth.register()
    auth.logout()
    response = auth.login(remember=True)
    cookies = response.headers.getlist("Set-Cookie")
    for name in ("session", "remember_token"):
        cookie = next(c for c in cookies if c.startswith(name + "="))
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie, cookie
        assert "Secure" not in cookie  # development over plain http still works


def test_production_requires_secret_key_and_sets_secure_cookies(monkeypatch, tmp_path):
    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.delenv("SECRET_KEY", raising=False)
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'p.db'}"})
    monkeypatch.setenv("SECRET_KEY", "x" * 64)
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'p.db'}"})
    assert app.config["SESSION_COOKIE_SECURE"] and app.config["REMEMBER_COOKIE_SECURE"]
    response = app.test_client().get("/login", headers={"X-Forwarded-Proto": "http"})
    assert response.status_code in (301, 302) and response.headers["Location"].startswith(
        "https://")
    secure = app.test_client().get("/login", headers={"X-Forwarded-Proto": "https"})
    assert "max-age" in secure.headers["Strict-Transport-Security"]
    assert PASSWORD  # (the shared test password stays out of production configs)
