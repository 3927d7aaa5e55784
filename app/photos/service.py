"""What a family does with its photos, behind the pages and the API: upload one (stored and
queued, or nothing at all), find its own photos and jobs, ask again on a photo (a tap, new
words), delete.

Every photo and job is looked up through its owner: anyone else's answers 404.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from flask import abort, current_app
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from app.db import REPROMPT_KINDS, Job, Photo, User
from app.extensions import db
from app.files import ORIGINAL, THUMB
from app.imaging import normalise_upload
from app.storage import storage
from models.prompts import MODES, parse_prompt, prompt_text

log = logging.getLogger(__name__)

#: Taps and new words waiting for the worker, per user, before more are refused (429): a
#: child tapping quickly should not fill the queue ahead of other families' photos.
MAX_PENDING_REPROMPTS = 3


class TooManyPendingJobs(Exception):
    """The user already has ``MAX_PENDING_JOBS`` photos waiting; ``retry_after`` in seconds."""

    retry_after = 15

    def __str__(self) -> str:
        return ("You already have several photos waiting. Please wait until they are ready, "
                "then try again.")


class TooManyReprompts(Exception):
    """The user already has ``MAX_PENDING_REPROMPTS`` taps or new words waiting."""

    retry_after = 2

    def __str__(self) -> str:
        return "Wait a moment: I'm still looking at the last one."


class PhotoNotReady(Exception):
    """A re-prompt on a photo whose own analysis is not done."""

    def __str__(self) -> str:
        return "This photo is still being looked at. Try again when it is ready."


def pending_jobs(user: User, *, reprompts: bool = False) -> int:
    """How many of ``user``'s jobs are queued or running (only re-prompts if ``reprompts``)."""
    query = (select(func.count(Job.id)).join(Photo, Job.photo_id == Photo.id)
             .where(Photo.user_id == user.id, Job.status.in_(("queued", "running"))))
    if reprompts:
        query = query.where(Job.kind.in_(REPROMPT_KINDS))
    return db.session.scalar(query) or 0


def save_with_files(row: Photo, job: Job, put_files: Callable[[Any, str], None]) -> None:
    """Commit a new photo or video ``row`` and its ``job`` together with its files, all or
    nothing.

    Args:
        row: a new, unsaved :class:`Photo` (its id, and so its storage prefix, comes from the
            database's flush).
        job: its first job, unsaved.
        put_files: called as ``put_files(store, prefix)`` (``app.storage.storage()`` and
            ``row.storage_prefix``) to write the row's files.

    Raises:
        Whatever fails (``app.storage.StorageError``, a database error), after the rows are
        rolled back and every file written under the prefix is deleted.
    """
    db.session.add(row)
    try:
        db.session.flush()
        put_files(storage(), row.storage_prefix)
        db.session.add(job)
        db.session.commit()
    except Exception:
        db.session.rollback()
        if row.id is not None:
            storage().delete_prefix(row.storage_prefix)
        raise


def submit_photo(user: User, data: bytes, mode: str, prompt: str | None) -> tuple[Photo, Job]:
    """Store an upload and queue its analysis; nothing is half-written if any step fails.

    Args:
        user: the owner.
        data: the uploaded file's bytes (any size up to MAX_CONTENT_LENGTH).
        mode: one of ``models.prompts.MODES`` (``"everything"``, ``"grounded"``).
        prompt: the phrases for ``grounded`` mode, e.g. ``"cat, ball"`` (ignored otherwise);
            stored as parsed (``models.prompts.parse_prompt``, ``prompt_text``).

    Returns:
        The committed photo (status ``queued``) and its job.

    Raises:
        ValueError: unknown mode. app.imaging.ImageRejected: not a usable photo.
        models.errors.BadPromptError: grounded mode with a bad prompt.
        app.storage.StorageError: the files could not be written (the row is rolled back).
        TooManyPendingJobs: the user already has ``MAX_PENDING_JOBS`` jobs queued or running.
    """
    if pending_jobs(user) >= current_app.config["MAX_PENDING_JOBS"]:
        raise TooManyPendingJobs()
    if mode not in MODES:
        raise ValueError("Choose “Find everything” or “Find by name”.")
    prompt = prompt_text(parse_prompt(prompt or "")) if mode == "grounded" else None
    normalised = normalise_upload(data, max_side=current_app.config["MAX_STORED_SIDE"])
    width, height = normalised.size
    photo = Photo(user_id=user.id, width=width, height=height, mode=mode, prompt=prompt)

    def put_files(store: Any, prefix: str) -> None:
        store.put(prefix + ORIGINAL, normalised.jpeg)
        store.put(prefix + THUMB, normalised.thumb_jpeg)

    job = Job(photo=photo)
    save_with_files(photo, job, put_files)
    current_app.extensions["job_queue"].enqueue(job.id)
    log.info("queued job %s for photo %s (%s)", job.id, photo.id, mode)
    return photo, job


def submit_reprompt(photo: Photo, kind: str, params: dict) -> Job:
    """Queue a re-prompt on a photo whose analysis is done: ``kind`` "point" (``params``
    {"x", "y"} photo pixels, checked by the caller) or "words" (``params`` {"prompt"}, parsed
    here and stored as parsed).

    Raises:
        PhotoNotReady: the photo's own analysis is not done.
        models.errors.BadPromptError: "words" with a bad prompt.
        TooManyReprompts: the owner already has ``MAX_PENDING_REPROMPTS`` waiting.
    """
    if photo.status != "done":
        raise PhotoNotReady()
    if kind == "words":
        params = {"prompt": prompt_text(parse_prompt(params.get("prompt") or ""))}
    if pending_jobs(photo.user, reprompts=True) >= MAX_PENDING_REPROMPTS:
        raise TooManyReprompts()
    job = Job(photo=photo, kind=kind, params=json.dumps(params))
    db.session.add(job)
    db.session.commit()
    current_app.extensions["job_queue"].enqueue(job.id)
    return job


def delete_photo(photo: Photo) -> None:
    """Delete a photo or video, its objects, its jobs and every file under its prefix."""
    prefix = photo.storage_prefix
    db.session.delete(photo)
    db.session.commit()
    storage().delete_prefix(prefix)


def own_photo_or_404(photo_id: int, *, kind: str | None = None) -> Photo:
    """Return the current user's library item ``photo_id`` (of ``kind`` "photo" or "video"
    when given, else either); 404 if missing, of another kind, or anyone else's."""
    photo = db.session.get(Photo, photo_id)
    if photo is None or photo.user_id != current_user.id or kind not in (None, photo.kind):
        abort(404)
    return photo


def own_job_or_404(job_id: str) -> Job:
    """Return the current user's job ``job_id``; 404 if missing or on anyone else's photo."""
    job = db.session.get(Job, job_id[:64])
    if job is None or job.photo.user_id != current_user.id:
        abort(404)
    return job


def user_photos(kind: str | None = None) -> list[Photo]:
    """The current user's library, newest first: photos and videos, or those of ``kind``
    ("photo" or "video") only."""
    query = select(Photo).where(Photo.user_id == current_user.id)
    if kind is not None:
        query = query.where(Photo.kind == kind)
    query = (query
             .options(selectinload(Photo.objects), selectinload(Photo.jobs))
             .order_by(Photo.created_at.desc(), Photo.id.desc()))
    return list(db.session.scalars(query))


def photo_weights(photo: Photo) -> dict[str, str]:
    """Which weights made the result: ``{"mobile_sam": "official"|"unverified", ...}``."""
    return json.loads(photo.weights) if photo.weights else {}
