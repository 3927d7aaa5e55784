"""Accounts: register, log in (remember me), log out (blueprint ``auth``)."""

from app.auth.routes import BAD_LOGIN, bp

__all__ = ["BAD_LOGIN", "bp"]
