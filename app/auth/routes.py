"""Account views: register, log in (remember me), log out."""

from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from werkzeug.security import check_password_hash, generate_password_hash

from app.auth.forms import LoginForm, RegisterForm
from app.db import User
from app.extensions import db
from app.security import (
    LOGIN_PER_ACCOUNT,
    LOGIN_PER_IP,
    REGISTER_PER_IP,
    account_key,
    failed_login,
    limiter,
)

bp = Blueprint("auth", __name__)

#: Shown for an unknown email and for a wrong password alike, so neither is revealed.
BAD_LOGIN = "Incorrect email or password"


def _equal_work(password: str) -> None:
    """Hash ``password`` once with the login KDF, as checking a real account would."""
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = generate_password_hash("not a real password", method="scrypt")
    check_password_hash(_DUMMY_HASH, password)


_DUMMY_HASH: str | None = None


def _safe_next(target: str | None) -> str:
    """Return ``target`` if it is a local path, else the home page (no open redirects)."""
    if target and target.startswith("/") and not target.startswith("//") \
            and not urlsplit(target).netloc:
        return target
    return url_for("photos.index")


@bp.route("/register", methods=["GET", "POST"])
@limiter.limit(REGISTER_PER_IP, methods=["POST"])
def register():
    """Create an account (never an admin) and log it in."""
    if current_user.is_authenticated:
        return redirect(url_for("photos.index"))
    form = RegisterForm()
    if form.validate_on_submit():
        if User.by_email(form.email.data) is not None:
            form.email.errors.append("An account with this email already exists. Log in instead?")
        else:
            user = User(email=User.normalise_email(form.email.data), is_admin=False)
            user.set_password(form.password.data)
            db.session.add(user)
            db.session.commit()
            login_user(user)
            flash("Welcome! Take a photo to begin.", "success")
            return redirect(url_for("photos.index"))
    return render_template("auth/register.html", form=form), 400 if form.errors else 200


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(LOGIN_PER_IP, methods=["POST"])
@limiter.limit(LOGIN_PER_ACCOUNT, methods=["POST"], key_func=account_key,
               deduct_when=failed_login)
def login():
    """Log in with email and password; the same message for any wrong combination."""
    if current_user.is_authenticated:
        return redirect(url_for("photos.index"))
    form = LoginForm()
    if form.validate_on_submit():
        user = User.by_email(form.email.data)
        if user is None:
            _equal_work(form.password.data)  # same time as a wrong password: emails stay private
        elif user.check_password(form.password.data):
            login_user(user, remember=form.remember.data)
            return redirect(_safe_next(request.args.get("next")))
        form.form_errors.append(BAD_LOGIN)
    return render_template("auth/login.html", form=form), 400 if form.errors else 200


@bp.route("/logout", methods=["GET", "POST"])
@login_required
def logout():
    """GET asks for confirmation; POST (with the CSRF token) logs out."""
    form = FlaskForm()
    if request.method == "POST" and form.validate_on_submit():
        logout_user()
        flash("You are logged out. See you soon!", "info")
        return redirect(url_for("auth.login"))
    return render_template("auth/logout.html", form=form)
