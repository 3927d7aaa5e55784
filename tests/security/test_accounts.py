"""Password policy (NIST SP 800-63B) and rate limits on logging in and signing up."""

import pytest

from app.auth import BAD_LOGIN
from app.security import password_problem
from tests.conftest import PASSWORD, AuthActions, make_app


@pytest.mark.parametrize("password", ["password", "12345678", "qwertyuiop", "iloveyou1",
                                      "Password123", "aaaaaaaaaaaa", "abababababab"])
def test_common_and_repetitive_passwords_are_refused(client, auth, password):
    response = auth.register(password=password)
    assert response.status_code == 400
    assert "Try three random words" in response.get_data(as_text=True)


def test_password_containing_the_email_is_refused():
    assert password_problem("grandma-rosa-2024", "rosa.g@example.com") is None
    assert password_problem("my name is rosalind", "rosalind@example.com")
    assert password_problem(PASSWORD, "parent@example.com") is None


def test_unknown_email_and_wrong_password_answer_identically(client, auth):
    auth.register()
    auth.logout()
    wrong, unknown = auth.login(password="wrong password!"), auth.login(email="no@example.com")
    assert wrong.status_code == unknown.status_code == 400
    for response in (wrong, unknown):
        html = response.get_data(as_text=True)
        assert BAD_LOGIN in html and "no account" not in html.lower()


@pytest.fixture
def limited_app(tmp_path, service_config):
    """An app with the production rate limits on (fresh in-memory counters)."""
    from app.security import limiter

    app = make_app(tmp_path, service_config, RATELIMIT_ENABLED=True)
    limiter.reset()
    yield app
    limiter.reset()


def test_failed_logins_are_limited_per_account_even_across_addresses(limited_app):
    owner = AuthActions(limited_app.test_client())
    owner.register("target@example.com")
    for i in range(10):
        client = limited_app.test_client()
        response = AuthActions(client).login("target@example.com", f"guess number {i}")
        assert response.status_code == 400
    blocked = AuthActions(limited_app.test_client()).login("target@example.com", PASSWORD)
    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) > 0
    # another account is not affected
    other = AuthActions(limited_app.test_client())
    other.register("other@example.com")
    other.logout()
    assert other.login("other@example.com").status_code == 302


def test_sign_ups_are_limited_per_address(limited_app):
    statuses = []
    for i in range(11):
        client = limited_app.test_client()
        statuses.append(AuthActions(client).register(f"kid{i}@example.com").status_code)
    assert statuses[:10] == [302] * 10 and statuses[10] == 429
