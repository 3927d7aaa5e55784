"""The user's photo library: list, detail page, file downloads, delete."""

import json

from flask import Blueprint, abort, flash, redirect, render_template, request, send_file, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.db import Photo
from app.extensions import db
from app.jobs import FILES, OBJECTS, OLD_OVERLAY, OVERLAY, delete_photo, storage

bp = Blueprint("library", __name__)

_MIMETYPES = {"original.jpg": "image/jpeg", "thumb.jpg": "image/jpeg",
              OVERLAY: "image/jpeg", OLD_OVERLAY: "image/png", "objects.json": "application/json",
              "preview.png": "image/png"}
#: Either overlay URL serves the first of these the photo has: the JPEG of a result made since
#: the overlay is JPEG, else the PNG of one made before (its photo has no JPEG).
_OVERLAYS = (OVERLAY, OLD_OVERLAY)


def own_photo_or_404(photo_id: int) -> Photo:
    """Return the current user's photo ``photo_id``; 404 if missing or anyone else's."""
    photo = db.session.get(Photo, photo_id)
    if photo is None or photo.user_id != current_user.id:
        abort(404)
    return photo


def user_photos() -> list[Photo]:
    """The current user's photos, newest first."""
    query = (select(Photo).where(Photo.user_id == current_user.id)
             .options(selectinload(Photo.objects), selectinload(Photo.jobs))
             .order_by(Photo.created_at.desc(), Photo.id.desc()))
    return list(db.session.scalars(query))


def photo_urls(photo: Photo) -> dict[str, str | None]:
    """URLs of a photo's page and files; overlay and JSON only once the job is done."""
    done = photo.status == "done"

    def file_url(name: str) -> str:
        return url_for("library.file", photo_id=photo.id, name=name)

    return {"page_url": url_for("library.photo", photo_id=photo.id),
            "original_url": file_url("original.jpg"), "thumb_url": file_url("thumb.jpg"),
            "overlay_url": file_url(OVERLAY) if done else None,
            "json_url": file_url(OBJECTS) if done else None}


def photo_weights(photo: Photo) -> dict[str, str]:
    """Which weights made the result: ``{"mobile_sam": "official"|"unverified", ...}``."""
    return json.loads(photo.weights) if photo.weights else {}


@bp.route("/library")
@login_required
def index():
    """The current user's photos, newest first, with thumbnails and status."""
    photos = user_photos()
    return render_template("library.html", photos=photos,
                           urls={p.id: photo_urls(p) for p in photos})


@bp.route("/photos/<int:photo_id>")
@login_required
def photo(photo_id: int):
    """A photo's result page (polls its job while it runs)."""
    photo = own_photo_or_404(photo_id)
    return render_template("photo.html", photo=photo, urls=photo_urls(photo),
                           weights=photo_weights(photo), job=photo.job, form=FlaskForm())


@bp.route("/photos/<int:photo_id>/delete", methods=["POST"])
@login_required
def delete(photo_id: int):
    """Delete a photo with its objects and files."""
    photo = own_photo_or_404(photo_id)
    if not FlaskForm().validate_on_submit():
        abort(400)
    delete_photo(photo)
    flash("The photo was deleted.", "success")
    return redirect(url_for("library.index"))


@bp.route("/photos/<int:photo_id>/<any(" + ", ".join(f'"{n}"' for n in FILES) + "):name>")
@login_required
def file(photo_id: int, name: str):
    """Serve one of the photo's files to its owner (from the local directory or the S3
    bucket, after the ownership check); ``?download=1`` saves it as a file.

    "overlay.jpg" and "overlay.png" both serve the photo's overlay as stored (``_OVERLAYS``),
    with the type and download name of the file found: a photo analysed before the overlay
    was JPEG keeps its PNG, and links to "overlay.png" made then keep working."""
    photo = own_photo_or_404(photo_id)
    for stored in _OVERLAYS if name in _OVERLAYS else (name,):
        try:
            source = storage().send_source(photo.storage_prefix + stored)
            break
        except FileNotFoundError:
            continue
    else:
        abort(404)
    download = request.args.get("download") == "1"
    response = send_file(source, mimetype=_MIMETYPES[stored],
                         as_attachment=download,
                         download_name=f"photo-{photo.id}-{stored}", max_age=0)
    response.headers["Cache-Control"] = "private, max-age=0, must-revalidate"
    return response
