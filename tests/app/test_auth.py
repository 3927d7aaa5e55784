"""Accounts: register, log in, remember me, log out, CSRF."""

from app.auth import BAD_LOGIN
from app.db import User
from tests.conftest import PASSWORD, csrf_token


def test_register_logs_in_and_never_makes_admin(app, client, auth):
    token = csrf_token(client, "/register")
    response = client.post("/register", data={
        "email": "Parent@Example.com", "password": PASSWORD, "confirm": PASSWORD,
        "is_admin": "y", "csrf_token": token})
    assert response.status_code == 302
    assert client.get("/").status_code == 200
    assert "Take" in client.get("/").get_data(as_text=True)
    with app.app_context():
        user = User.by_email("parent@example.com")
        assert user is not None and user.is_admin is False
        assert user.password_hash.startswith("scrypt:") and PASSWORD not in user.password_hash


def test_taken_email_and_mismatch_are_explained(client, auth):
    auth.register()
    auth.logout()
    again = auth.register()
    assert again.status_code == 400
    assert "already exists" in again.get_data(as_text=True)
    mismatch = auth.register("other@example.com", confirm="something else entirely")
    assert "do not match" in mismatch.get_data(as_text=True)
    short = auth.register("third@example.com", password="short")
    assert "8 and 128" in short.get_data(as_text=True)


def test_wrong_password_and_unknown_email_get_same_message(client, auth):
    auth.register()
    auth.logout()
    wrong = auth.login(password="not the password")
    unknown = auth.login(email="nobody@example.com")
    for response in (wrong, unknown):
        assert response.status_code == 400
        assert BAD_LOGIN in response.get_data(as_text=True)
    assert auth.login().status_code == 302


def test_remember_me_sets_a_lasting_cookie(client, auth):
    auth.register()
    auth.logout()
    auth.login(remember=True)
    assert client.get_cookie("remember_token") is not None


def test_logout_needs_post_with_token(client, auth):
    auth.register()
    assert client.post("/logout").status_code == 400  # no CSRF token
    assert client.get("/library").status_code == 200
    assert auth.logout().status_code == 302
    assert client.get("/library").status_code == 302  # back to login


def test_pages_need_login_and_post_needs_csrf(client, auth):
    assert client.get("/library").headers["Location"].startswith("/login")
    assert client.get("/api/v1/photos").status_code == 401
    assert client.get("/api/v1/photos").get_json() == {"error": "Log in first."}
    auth.register()
    response = client.post("/api/v1/photos", data={"mode": "everything"})
    assert response.status_code == 400
    assert "CSRF" in response.get_json()["error"]
