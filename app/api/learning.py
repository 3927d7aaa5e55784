"""API: learning with a photo: a tap (the object under a point), new words (find more
things by name on a photo already seen), and the "words we learned" list."""

from __future__ import annotations

import math
from typing import Any

from flask import abort, jsonify, request, url_for
from flask_login import login_required

from app.api.blueprint import bp
from app.api.serializers import error, serialize_words
from app.photos.service import (
    PhotoNotReady,
    TooManyReprompts,
    own_photo_or_404,
    submit_reprompt,
)
from app.photos.words import add_word, remove_word
from models.errors import BadPromptError


def tap_point(width: int, height: int, body: Any) -> tuple[float, float]:
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
    if not (0 <= x < width and 0 <= y < height):
        raise ValueError(f"The point is outside the photo ({width}x{height}).")
    return float(x), float(y)


def _queued(photo_id: int, kind: str):
    """Queue a re-prompt of ``kind`` on the user's photo (its parameters from the JSON
    body); 202 with its URLs, or the error response."""
    # First: another account's photo is 404, whatever else; so is a video (its taps are
    # answered on the page from its tracked masks).
    photo = own_photo_or_404(photo_id, kind="photo")
    body = request.get_json(silent=True)
    try:
        if kind == "point":
            x, y = tap_point(photo.width, photo.height, body)
            params = {"x": x, "y": y}
        else:
            prompt = body.get("prompt") if isinstance(body, dict) else None
            if not isinstance(prompt, str):
                raise ValueError('Send JSON {"prompt": "cat, ball"}.')
            params = {"prompt": prompt}
        job = submit_reprompt(photo, kind, params)
    except PhotoNotReady as exc:
        return error(409, str(exc))
    except (ValueError, BadPromptError) as exc:
        return error(400, str(exc))
    except TooManyReprompts as exc:
        return error(429, str(exc), retry_after=exc.retry_after)
    return jsonify(job_id=job.id, status_url=url_for("api.get_job", job_id=job.id),
                   result_url=url_for("api.reprompt_result", job_id=job.id)), 202


@bp.post("/photos/<int:photo_id>/point")
@login_required
def point(photo_id: int):
    """Queue a tap: the object under ``{"x", "y"}`` (photo pixels), cut out and named."""
    return _queued(photo_id, "point")


@bp.post("/photos/<int:photo_id>/find")
@login_required
def find(photo_id: int):
    """Queue new words on a photo already seen: ``{"prompt": "cat, ball"}`` finds and
    outlines those things (grounded mode on the photo's cached data)."""
    return _queued(photo_id, "words")


@bp.route("/photos/<int:photo_id>/words", methods=["GET", "POST"])
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
        return error(400, str(exc))
    return jsonify(word={"id": entry.id, "word": entry.word}, words=serialize_words(photo)), 201


@bp.delete("/photos/<int:photo_id>/words/<int:word_id>")
@login_required
def delete_word(photo_id: int, word_id: int):
    """Remove one word from the photo's list."""
    if not remove_word(own_photo_or_404(photo_id), word_id):
        abort(404)
    return "", 204
