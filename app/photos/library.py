"""The user's photo library: list, result page, file downloads, delete."""

from flask import abort, flash, redirect, render_template, request, send_file, url_for
from flask_login import login_required
from flask_wtf import FlaskForm

from app.files import FILES, MIMETYPES, OVERLAYS, item_urls, photo_urls
from app.photos.blueprint import bp
from app.photos.service import delete_photo, own_photo_or_404, photo_weights, user_photos
from app.storage import storage


@bp.route("/library")
@login_required
def library():
    """The current user's photos and videos, newest first, with thumbnails and status."""
    photos = user_photos()
    return render_template("library.html", photos=photos,
                           urls={p.id: item_urls(p) for p in photos})


@bp.route("/photos/<int:photo_id>")
@login_required
def photo(photo_id: int):
    """A photo's result page (polls its job while it runs); a video's is its own page."""
    photo = own_photo_or_404(photo_id)
    if photo.is_video:
        return redirect(url_for("videos.video", video_id=photo.id))
    return render_template("photo.html", photo=photo, urls=photo_urls(photo),
                           weights=photo_weights(photo), job=photo.job, form=FlaskForm())


@bp.route("/photos/<int:photo_id>/delete", methods=["POST"])
@login_required
def delete(photo_id: int):
    """Delete a photo or video with its objects and files."""
    photo = own_photo_or_404(photo_id)
    if not FlaskForm().validate_on_submit():
        abort(400)
    delete_photo(photo)
    flash(f"The {photo.kind} was deleted.", "success")
    return redirect(url_for("photos.library"))


@bp.route("/photos/<int:photo_id>/<any(" + ", ".join(f'"{n}"' for n in FILES) + "):name>")
@login_required
def file(photo_id: int, name: str):
    """Serve one of the photo's files to its owner (from the local directory or the S3
    bucket, after the ownership check); ``?download=1`` saves it as a file.

    "overlay.jpg" and "overlay.png" both serve the photo's overlay as stored (``OVERLAYS``),
    with the type and download name of the file found: a photo analysed before the overlay
    was JPEG keeps its PNG, and links to "overlay.png" made then keep working."""
    photo = own_photo_or_404(photo_id, kind="photo")
    for stored in OVERLAYS if name in OVERLAYS else (name,):
        try:
            source = storage().send_source(photo.storage_prefix + stored)
            break
        except FileNotFoundError:
            continue
    else:
        abort(404)
    download = request.args.get("download") == "1"
    response = send_file(source, mimetype=MIMETYPES[stored],
                         as_attachment=download,
                         download_name=f"photo-{photo.id}-{stored}", max_age=0)
    response.headers["Cache-Control"] = "private, max-age=0, must-revalidate"
    return response
