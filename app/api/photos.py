"""API: upload a photo, the library, one photo, delete, the favourite star."""

from flask import jsonify, request
from flask_login import current_user, login_required

from app.api.blueprint import bp
from app.api.serializers import error, serialize_photo
from app.extensions import db
from app.imaging import ImageRejected
from app.photos.forms import chosen_file
from app.photos.service import (
    TooManyPendingJobs,
    delete_photo,
    own_photo_or_404,
    submit_photo,
    user_photos,
)
from app.storage import StorageError
from models.errors import BadPromptError


@bp.post("/photos")
@login_required
def create_photo():
    """Store an uploaded photo (multipart ``image``, ``mode``, ``prompt``) and queue its
    analysis; answers 202 ``{"photo_id", "job_id"}`` at once."""
    data = chosen_file("image")
    if data is None:
        return error(400, "Send the photo in the form field 'image'.")
    mode = request.form.get("mode", "everything")
    try:
        photo, job = submit_photo(current_user, data, mode, request.form.get("prompt"))
    except ImageRejected as exc:
        return error(415, str(exc))
    except (BadPromptError, ValueError) as exc:
        return error(400, str(exc))
    except StorageError:
        return error(503, "We could not save your photo just now. Please try again.")
    except TooManyPendingJobs as exc:
        return error(429, str(exc), retry_after=exc.retry_after)
    return jsonify(photo_id=photo.id, job_id=job.id), 202


@bp.get("/photos")
@login_required
def list_photos():
    """The user's photos, newest first."""
    return jsonify(photos=[serialize_photo(p) for p in user_photos(kind="photo")])


@bp.get("/photos/<int:photo_id>")
@login_required
def get_photo(photo_id: int):
    """One photo with its objects."""
    return jsonify(serialize_photo(own_photo_or_404(photo_id, kind="photo")))


@bp.delete("/photos/<int:photo_id>")
@login_required
def remove_photo(photo_id: int):
    """Delete a photo and its files."""
    delete_photo(own_photo_or_404(photo_id, kind="photo"))
    return "", 204


@bp.put("/photos/<int:photo_id>/favourite")
@login_required
def favourite(photo_id: int):
    """Set or clear a photo's or video's favourite flag: ``{"favourite": true|false}``."""
    photo = own_photo_or_404(photo_id)
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("favourite"), bool):
        return error(400, 'Send JSON {"favourite": true} or {"favourite": false}.')
    photo.favourite = body["favourite"]
    db.session.commit()
    return jsonify(favourite=photo.favourite)
