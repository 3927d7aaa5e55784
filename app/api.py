"""JSON API v1: upload, job status, library, delete. Errors are ``{"error": "..."}``."""

from flask import Blueprint, abort, jsonify, request
from flask_login import current_user, login_required

from app.db import Job, Photo
from app.extensions import db
from app.imaging import ImageRejected
from app.jobs import TooManyPendingJobs, delete_photo, serialize_job, submit_photo
from app.library import own_photo_or_404, photo_urls, photo_weights, user_photos
from app.storage import StorageError
from models.errors import BadPromptError

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def error(status: int, message: str):
    """Return the JSON error response ``{"error": message}`` with ``status``."""
    return jsonify(error=message), status


def chosen_file(field: str) -> bytes | None:
    """Bytes of the first file sent under ``field`` that was actually chosen, or None.

    The upload page has two inputs named ``image`` (camera and photo library); the browser sends
    both, the one not used as an empty part without a filename.
    """
    for upload in request.files.getlist(field):
        if upload.filename:
            return upload.read()
    return None


def serialize_photo(photo: Photo) -> dict:
    """Return the API view of a photo (see README, "JSON API")."""
    return {
        "id": photo.id, "width": photo.width, "height": photo.height, "mode": photo.mode,
        "prompt": photo.prompt, "status": photo.status, "error": photo.error,
        "created_at": photo.created_at.isoformat() + "Z", "favourite": photo.favourite,
        "job_id": photo.job.id if photo.job else None,
        "weights": photo_weights(photo),
        "objects": [{"label": o.label, "score": round(o.score, 4), "box": o.box,
                     "area": o.area, "color": o.color} for o in photo.objects],
        **photo_urls(photo),
    }


@bp.post("/photos")
@login_required
def create_photo():
    """Store an uploaded photo and queue its analysis; answers 202 at once."""
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
        response, status = error(429, str(exc))
        response.headers["Retry-After"] = str(exc.retry_after)
        return response, status
    return jsonify(photo_id=photo.id, job_id=job.id), 202


@bp.get("/jobs/<job_id>")
@login_required
def get_job(job_id: str):
    """A job's status, progress and readable error."""
    job = db.session.get(Job, job_id[:64])
    if job is None or job.photo.user_id != current_user.id:
        abort(404)
    return jsonify(serialize_job(job))


@bp.get("/photos")
@login_required
def list_photos():
    """The user's photos, newest first."""
    return jsonify(photos=[serialize_photo(p) for p in user_photos()])


@bp.get("/photos/<int:photo_id>")
@login_required
def get_photo(photo_id: int):
    """One photo with its objects."""
    return jsonify(serialize_photo(own_photo_or_404(photo_id)))


@bp.delete("/photos/<int:photo_id>")
@login_required
def remove_photo(photo_id: int):
    """Delete a photo and its files."""
    delete_photo(own_photo_or_404(photo_id))
    return "", 204
