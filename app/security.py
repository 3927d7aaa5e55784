"""Security headers (Flask-Talisman), rate limits (Flask-Limiter) and the password policy.

The Content Security Policy allows scripts and styles from this origin only (no inline code,
no ``eval``; WebAssembly compiled from this origin's files, for the on-device tap decoder);
images may also be ``data:``/``blob:`` URLs (photo previews made in the browser).

Every response is also cross-origin isolated (``Cross-Origin-Opener-Policy: same-origin``,
``Cross-Origin-Embedder-Policy: require-corp``): pages then get ``SharedArrayBuffer``, which the
on-device tap decoder needs for WebAssembly threads. The pages load nothing from other origins,
so nothing they use is blocked; other sites' windows lose any reference to ours.
"""

from __future__ import annotations

from functools import cache

from flask import Flask, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_talisman import Talisman
from werkzeug.middleware.proxy_fix import ProxyFix

from app.db import User

CSP = {
    "default-src": "'self'",
    # 'wasm-unsafe-eval': WebAssembly only (onnxruntime-web decoding taps), not JS eval.
    "script-src": ["'self'", "'wasm-unsafe-eval'"],
    "style-src": "'self'",
    "img-src": ["'self'", "data:", "blob:"],
    "media-src": ["'self'", "data:", "blob:"],
    "connect-src": "'self'",
    "font-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'self'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}
#: Cross-origin isolation (HTML's "cross-origin isolated" state; see the module docstring).
ISOLATION = {"Cross-Origin-Opener-Policy": "same-origin",
             "Cross-Origin-Embedder-Policy": "require-corp"}  # fmt: skip
#: Browser features: the camera through the file input only; no location, microphone, etc.
PERMISSIONS = {"camera": "(self)", "geolocation": "()", "microphone": "()", "payment": "()",
               "usb": "()"}

talisman = Talisman()
limiter = Limiter(key_func=get_remote_address, default_limits=[], headers_enabled=True)

#: Per-IP and per-account limits on account endpoints. Per-account limits count failed
#: attempts only (NIST SP 800-63B 5.2.2 asks for at most 100 consecutive failures).
LOGIN_PER_IP = "20 per minute; 200 per hour"
LOGIN_PER_ACCOUNT = "10 per 5 minutes; 50 per day"
REGISTER_PER_IP = "10 per hour"


def account_key() -> str:
    """Rate-limit key of the account named in the submitted form (normalised email)."""
    return "account:" + User.normalise_email(request.form.get("email", ""))[:254]


def failed_login(response) -> bool:
    """True when a login attempt failed (the form is shown again instead of redirecting)."""
    return response.status_code != 302


def init_app(app: Flask) -> None:
    """Install security headers, HTTPS rules (production) and rate limits on ``app``.

    In production the app sits behind Heroku's router: ``ProxyFix`` trusts one proxy's
    ``X-Forwarded-*`` headers, so HTTPS redirects and client IPs for rate limits are right.
    """
    production = app.config["PRODUCTION"]
    if production:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)
    talisman.init_app(
        app, content_security_policy=CSP, force_https=production,
        strict_transport_security=production, session_cookie_secure=production,
        session_cookie_http_only=True, frame_options="DENY", referrer_policy="same-origin",
        permissions_policy=PERMISSIONS)
    app.after_request(isolate)
    app.config.setdefault("RATELIMIT_STORAGE_URI", "memory://")
    limiter.init_app(app)


def isolate(response):
    """Add the cross-origin isolation headers (``ISOLATION``) to ``response``."""
    for name, value in ISOLATION.items():
        response.headers.setdefault(name, value)
    return response


@cache
def common_passwords() -> frozenset[str]:
    """The 30,000 most common passwords (zxcvbn's list, from leaked password sets), lower-case.

    NIST SP 800-63B 5.1.1.2 asks verifiers to refuse passwords found in such lists.
    """
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(p.lower() for p in FREQUENCY_LISTS["passwords"])


def password_problem(password: str, email: str = "") -> str | None:
    """Return why ``password`` is refused (common, repetitive, or the email), or None if fine."""
    lowered = password.lower()
    if lowered in common_passwords() or lowered.rstrip("0123456789!") in common_passwords():
        return "This password is one of the most common ones. Try three random words."
    if len(set(lowered)) <= 2:
        return "This password repeats the same characters. Try three random words."
    local = email.lower().partition("@")[0]
    if lowered == email.lower() or (len(local) >= 4 and local in lowered):
        return "The password must not contain your email. Try three random words."
    return None
