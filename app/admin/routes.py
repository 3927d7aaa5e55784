"""Admin panel views: list users, promote, demote, delete. Admins only (others get 404)."""

from functools import wraps

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from sqlalchemy import func, select

from app.db import Photo, User
from app.extensions import db
from app.photos.service import delete_photo
from app.worker.status import worker_status

bp = Blueprint("admin", __name__, url_prefix="/admin")


def admin_required(view):
    """Let only admins through; everyone else gets 404, so the panel's existence is not shown."""

    @wraps(view)
    @login_required
    def wrapped(*args, **kwargs):
        if not current_user.is_admin:
            abort(404)
        return view(*args, **kwargs)

    return wrapped


def _user_or_404(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        abort(404)
    return user


def _checked_form() -> None:
    if not FlaskForm().validate_on_submit():
        abort(400)


@bp.route("")
@admin_required
def users():
    """Every user with email, admin flag, joined date and photo count; the workers'
    heartbeat (queue depth, workers alive, last job time)."""
    counts = (select(User, func.count(Photo.id)).outerjoin(Photo, Photo.user_id == User.id)
              .group_by(User.id).order_by(User.created_at))
    return render_template("admin/users.html", users=db.session.execute(counts).all(),
                           form=FlaskForm(), health=worker_status())


@bp.route("/users/<int:user_id>/promote", methods=["POST"])
@admin_required
def promote(user_id: int):
    """Make a user an admin."""
    _checked_form()
    user = _user_or_404(user_id)
    user.is_admin = True
    db.session.commit()
    flash(f"{user.email} is now an admin.", "success")
    return redirect(url_for("admin.users"))


@bp.route("/users/<int:user_id>/demote", methods=["POST"])
@admin_required
def demote(user_id: int):
    """Take admin rights away; the last admin cannot demote themselves."""
    _checked_form()
    user = _user_or_404(user_id)
    if user.is_admin and User.admin_count() <= 1:
        flash("You are the last admin: promote someone else first.", "error")
    else:
        user.is_admin = False
        db.session.commit()
        flash(f"{user.email} is no longer an admin.", "success")
    return redirect(url_for("admin.users"))


@bp.route("/users/<int:user_id>/delete", methods=["POST"])
@admin_required
def delete(user_id: int):
    """Delete a user with all their photos and files; the last admin cannot be deleted."""
    _checked_form()
    user = _user_or_404(user_id)
    if user.is_admin and User.admin_count() <= 1:
        flash("The last admin cannot be deleted: promote someone else first.", "error")
        return redirect(url_for("admin.users"))
    for photo in list(user.photos):
        delete_photo(photo)
    email = user.email
    db.session.delete(user)
    db.session.commit()
    flash(f"{email} and their photos were deleted.", "success")
    return redirect(url_for("admin.users"))
