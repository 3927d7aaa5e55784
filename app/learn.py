"""Learning with a photo: tap to cut out (point re-prompt jobs), the "words we learned" list,
favourites, and the grown-up's speech settings. JSON under /api/v1, forms for no-JavaScript use.

Every photo and job is looked up through its owner: anyone else's answers 404.
"""

from __future__ import annotations

import json
import math
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from sqlalchemy import func, select

from app.db import Job, Photo
from app.extensions import db
from app.jobs import reprompt_file, storage
from app.library import own_photo_or_404, photo_weights
from app.storage import StorageError
from app.words import (
    SettingsForm,
    WordForm,
    add_word,
    is_named,
    remove_word,
    serialize_words,
)

bp = Blueprint("learn", __name__)

#: Taps waiting for the worker, per user, before more are refused (429): a child tapping
#: quickly should not fill the queue ahead of other families' photos.
MAX_PENDING_TAPS = 3


@bp.app_template_global()
def object_named(obj: Any) -> bool:
    """Template helper: :func:`app.words.is_named` for a Detection row or an object dict."""
    if isinstance(obj, dict):
        return is_named(obj.get("label"), obj.get("named"))
    return is_named(getattr(obj, "label", None), getattr(obj, "named", None))


def json_error(status: int, message: str) -> tuple[Response, int]:
    """Return ``{"error": message}`` with ``status``."""
    return jsonify(error=message), status


def own_job_or_404(job_id: str) -> Job:
    """Return the current user's job ``job_id``; 404 if missing or on anyone else's photo."""
    job = db.session.get(Job, job_id[:64])
    if job is None or job.photo.user_id != current_user.id:
        abort(404)
    return job


def tap_point(photo: Photo, body: Any) -> tuple[float, float]:
    """The ``{"x", "y"}`` of a tap in photo pixels (0 <= x < width, 0 <= y < height).

    Raises:
        ValueError: missing, not finite numbers, or outside the photo.
    """
    if not isinstance(body, dict):
        raise ValueError('Send JSON {"x": ..., "y": ...} in photo pixels.')
    x, y = body.get("x"), body.get("y")
    for value in (x, y):
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(
                value):
            raise ValueError('"x" and "y" must be numbers (photo pixels).')
    if not (0 <= x < photo.width and 0 <= y < photo.height):
        raise ValueError(f"The point is outside the photo ({photo.width}x{photo.height}).")
    return float(x), float(y)


def serialize_tap(job: Job) -> dict[str, Any]:
    """The API view of a finished point job: the object under the tap (label, named, score,
    box xyxy px, area px, colour, COCO RLE mask) or None, and the cut-out PNG's URL."""
    params = json.loads(job.params or "{}")
    result = json.loads(job.result or "{}")
    objects = result.get("objects") or []
    obj = objects[0] if objects else None
    if obj is not None:
        obj = {**obj, "named": is_named(obj.get("label"), obj.get("named"))}
    return {"job_id": job.id, "photo_id": job.photo_id, "kind": job.kind,
            "status": job.status, "x": params.get("x"), "y": params.get("y"), "object": obj,
            "cutout_url": url_for("learn.cutout", job_id=job.id) if obj else None,
            "weights": result.get("weights") or photo_weights(job.photo)}


@bp.post("/api/v1/photos/<int:photo_id>/point")
@login_required
def point(photo_id: int):
    """Queue a "point" re-prompt: segment the object under ``{"x", "y"}`` (photo pixels)."""
    photo = own_photo_or_404(photo_id)
    if photo.status != "done":
        return json_error(409, "This photo is still being looked at. Try again when it is ready.")
    try:
        x, y = tap_point(photo, request.get_json(silent=True))
    except ValueError as exc:
        return json_error(400, str(exc))
    pending = db.session.scalar(
        select(func.count(Job.id)).join(Photo, Job.photo_id == Photo.id).where(
            Photo.user_id == current_user.id, Job.kind != "analyse",
            Job.status.in_(("queued", "running"))))
    if pending >= MAX_PENDING_TAPS:
        response, status = json_error(429, "Wait a moment: I'm still cutting out the last one.")
        response.headers["Retry-After"] = "2"
        return response, status
    job = Job(photo=photo, kind="point", params=json.dumps({"x": x, "y": y}))
    db.session.add(job)
    db.session.commit()
    current_app.extensions["job_queue"].enqueue(job.id)
    return jsonify(job_id=job.id, status_url=url_for("api.get_job", job_id=job.id),
                   result_url=url_for("learn.tap_result", job_id=job.id)), 202


@bp.get("/api/v1/jobs/<job_id>/result")
@login_required
def tap_result(job_id: str):
    """A finished point job's object and cut-out; 409 while it is queued or running."""
    job = own_job_or_404(job_id)
    if job.kind != "point":
        abort(404)
    if job.status == "failed":
        return json_error(422, job.error or "That did not work. Please tap again.")
    if job.status != "done":
        return json_error(409, "Not ready yet: poll the job until it is done.")
    return jsonify(serialize_tap(job))


@bp.get("/api/v1/jobs/<job_id>/cutout.png")
@login_required
def cutout(job_id: str):
    """The cut-out PNG (RGBA, the object's box) of a finished point job."""
    job = own_job_or_404(job_id)
    if job.kind != "point" or job.status != "done":
        abort(404)
    try:
        data = storage().get(job.photo.storage_prefix + reprompt_file(job.id, job.kind))
    except (FileNotFoundError, StorageError):
        abort(404)
    response = Response(data, mimetype="image/png")
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response


@bp.route("/api/v1/photos/<int:photo_id>/words", methods=["GET", "POST"])
@login_required
def words(photo_id: int):
    """The photo's "words we learned": GET the list; POST ``{"word"}`` adds one (201)."""
    photo = own_photo_or_404(photo_id)
    if request.method == "GET":
        return jsonify(words=serialize_words(photo))
    body = request.get_json(silent=True)
    try:
        entry = add_word(photo, body.get("word") if isinstance(body, dict) else None)
    except ValueError as exc:
        return json_error(400, str(exc))
    return jsonify(word={"id": entry.id, "word": entry.word}, words=serialize_words(photo)), 201


@bp.delete("/api/v1/photos/<int:photo_id>/words/<int:word_id>")
@login_required
def delete_word(photo_id: int, word_id: int):
    """Remove one word from the photo's list."""
    if not remove_word(own_photo_or_404(photo_id), word_id):
        abort(404)
    return "", 204


@bp.put("/api/v1/photos/<int:photo_id>/favourite")
@login_required
def favourite(photo_id: int):
    """Set or clear the photo's favourite flag: ``{"favourite": true|false}``."""
    photo = own_photo_or_404(photo_id)
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("favourite"), bool):
        return json_error(400, 'Send JSON {"favourite": true} or {"favourite": false}.')
    photo.favourite = body["favourite"]
    db.session.commit()
    return jsonify(favourite=photo.favourite)


# ---------------------------------------------------------------- forms (without JavaScript)

def back_to_photo(photo: Photo, anchor: str = "") -> Response:
    """Redirect to the photo's page (optionally to one of its sections)."""
    return redirect(url_for("library.photo", photo_id=photo.id) + anchor)


@bp.post("/photos/<int:photo_id>/favourite")
@login_required
def favourite_form(photo_id: int):
    """Toggle the favourite flag from the photo page's button."""
    photo = own_photo_or_404(photo_id)
    if not FlaskForm().validate_on_submit():
        abort(400)
    photo.favourite = request.form.get("favourite") == "1"
    db.session.commit()
    flash("Added to favourites." if photo.favourite else "Removed from favourites.", "success")
    return back_to_photo(photo)


@bp.post("/photos/<int:photo_id>/words")
@login_required
def add_word_form(photo_id: int):
    """Add a word to the photo's list from the page's form."""
    photo = own_photo_or_404(photo_id)
    form = WordForm()
    if not form.validate_on_submit():
        flash("Type a word (letters only) and try again.", "error")
        return back_to_photo(photo, "#words")
    try:
        add_word(photo, form.word.data)
    except ValueError as exc:
        flash(str(exc), "error")
    return back_to_photo(photo, "#words")


@bp.post("/photos/<int:photo_id>/words/<int:word_id>/delete")
@login_required
def delete_word_form(photo_id: int, word_id: int):
    """Remove a word from the photo's list from the page's form."""
    photo = own_photo_or_404(photo_id)
    if not FlaskForm().validate_on_submit():
        abort(400)
    if not remove_word(photo, word_id):
        abort(404)
    return back_to_photo(photo, "#words")


@bp.route("/settings", methods=["GET", "POST"])
@login_required
def settings():
    """The grown-up's settings: the voice and speed names are read in, and game sounds."""
    form = SettingsForm(obj=None)
    if request.method == "GET":
        form.voice.data = current_user.speech_voice or ""
        form.rate.data = current_user.speech_rate
        form.sounds.data = current_user.sound_effects
    elif form.validate_on_submit():
        current_user.speech_voice = (form.voice.data or "").strip() or None
        current_user.speech_rate = round(float(form.rate.data), 2)
        current_user.sound_effects = bool(form.sounds.data)
        db.session.commit()
        flash("Saved. Names will be read like this from now on.", "success")
        return redirect(url_for("learn.settings"))
    status = 400 if request.method == "POST" else 200
    return render_template("settings.html", form=form), status
