"""API: a job's status, and a finished re-prompt's result and picture."""

from flask import Response, abort, jsonify
from flask_login import login_required

from app.api.blueprint import bp
from app.api.serializers import error, serialize_job, serialize_reprompt
from app.db import REPROMPT_KINDS
from app.files import reprompt_file
from app.photos.service import own_job_or_404
from app.storage import StorageError, storage


@bp.get("/jobs/<job_id>")
@login_required
def get_job(job_id: str):
    """A job's status, progress and readable error."""
    return jsonify(serialize_job(own_job_or_404(job_id)))


@bp.get("/jobs/<job_id>/result")
@login_required
def reprompt_result(job_id: str):
    """A finished re-prompt's result (a tap's object, new words' objects); 409 while it is
    queued or running, 422 with the reason when it failed."""
    job = own_job_or_404(job_id)
    if job.kind not in REPROMPT_KINDS:
        abort(404)
    if job.status == "failed":
        return error(422, job.error or "That did not work. Please try again.")
    if job.status != "done":
        return error(409, "Not ready yet: poll the job until it is done.")
    return jsonify(serialize_reprompt(job))


@bp.get("/jobs/<job_id>/cutout.png")
@login_required
def cutout(job_id: str):
    """A finished tap's cut-out: PNG, RGBA, the object's box, transparent outside its mask."""
    return _picture(job_id, "point", "image/png")


@bp.get("/jobs/<job_id>/overlay.jpg")
@login_required
def words_overlay(job_id: str):
    """Finished new words' overlay: the photo with what was found coloured and named (JPEG)."""
    return _picture(job_id, "words", "image/jpeg")


def _picture(job_id: str, kind: str, mimetype: str) -> Response:
    """The stored picture of the user's finished re-prompt job of ``kind``; else 404."""
    job = own_job_or_404(job_id)
    if job.kind != kind or job.status != "done":
        abort(404)
    try:
        data = storage().get(job.photo.storage_prefix + reprompt_file(job.id, job.kind))
    except (FileNotFoundError, StorageError):
        abort(404)
    response = Response(data, mimetype=mimetype)
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response
