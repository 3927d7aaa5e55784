"""Error pages for browsers and ``{"error": ...}`` JSON for the API."""

import logging

from flask import Flask, jsonify, redirect, render_template, request, url_for
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

log = logging.getLogger(__name__)

MESSAGES = {
    400: ("Something was not right", "Please check the form and try again."),
    401: ("Please log in", "Log in to see this page."),
    403: ("Not allowed", "You are not allowed to do that."),
    404: ("Not found", "We could not find that page or photo."),
    405: ("Not allowed", "That action is not possible here."),
    413: ("File too large", "That file is too large. Please send a smaller one."),
    415: ("Not a photo", "Please send a JPEG, PNG, WebP or HEIC photo."),
    429: ("Slow down", "Too many requests. Please wait a moment and try again."),
    500: ("Oops", "Something went wrong on our side. Please try again."),
}


def wants_json() -> bool:
    """True for API calls, which get JSON errors instead of pages."""
    return request.path.startswith("/api/")


def _respond(code: int, message: str | None = None):
    title, default = MESSAGES.get(code, ("Error", "Something went wrong."))
    message = message or default
    if wants_json():
        return jsonify(error=message), code
    return render_template("errors/error.html", code=code, title=title, message=message), code


def register(app: Flask) -> None:
    """Install the handlers on ``app``."""

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError):
        """Missing or stale CSRF token: say so plainly."""
        if wants_json():
            return _respond(400, f"CSRF check failed: {exc.description} Send the token from "
                                 "<meta name='csrf-token'> in the X-CSRFToken header.")
        return _respond(400, "This page was open too long. Please go back, reload and try again.")

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        """Every HTTP error as a page or JSON; messages for the user, not the stack trace."""
        code = exc.code or 500
        message = None if code in MESSAGES else exc.description
        if code == 413:
            from app.videos.blueprint import too_large_message

            message = too_large_message()
        return _respond(code, message)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        """Unexpected errors are logged with the traceback and answered with a calm 500."""
        if isinstance(exc, HTTPException):
            return http_error(exc)
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _respond(InternalServerError.code)


def unauthorized():
    """Flask-Login's handler: 401 JSON for the API, the login page for browsers."""
    if wants_json():
        return jsonify(error="Log in first."), 401
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
