"""The job queue front: submitting photos, and the database-fed job source the worker drains.

The queue sits behind :class:`JobQueue` (``enqueue``) on the web side and
:class:`models.worker.JobSource` on the worker side. The embedded default is the database itself:
a ``jobs`` row with status ``queued`` *is* the queue entry, and workers claim rows with an
atomic conditional UPDATE, which works on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import socket
from collections.abc import Iterable
from datetime import timedelta
from typing import Protocol

from flask import Flask, current_app, url_for
from PIL import Image
from sqlalchemy import case, func, select, update

from app.db import Detection, Job, Photo, User, utcnow
from app.extensions import db
from app.imaging import normalise_upload
from app.storage import Storage, StorageError
from models.prompts import parse_prompt
from models.result import AnalysisResult
from models.worker import JobRequest

log = logging.getLogger(__name__)

MODES = ("everything", "grounded")
#: A job is tried at most this many times when its worker dies; then it fails with a reason.
MAX_ATTEMPTS = 2

ORIGINAL, OVERLAY, OBJECTS, THUMB = "original.jpg", "overlay.jpg", "objects.json", "thumb.jpg"
#: The overlay of photos analysed before it was stored as JPEG (``OVERLAY``): served for either
#: overlay name while a photo has no ``OVERLAY``; once it has one, that wins (``app.library``).
OLD_OVERLAY = "overlay.png"
PREVIEW = "preview.png"  # everything mode's masks before their names, while the job runs
FILES = (ORIGINAL, OVERLAY, OBJECTS, THUMB, PREVIEW, OLD_OVERLAY)
#: Job kinds: the photo's own analysis, and re-prompts on its cached image embedding.
KINDS = ("analyse", "point", "words")


_CACHE_KEY = re.compile(r"photo-(\d+)-[0-9a-f]{16}")


def photo_cache_key(photo_id: int, original: bytes) -> str:
    """The worker's cache key of a photo: ``photo-<id>-<first 16 hex of SHA-256 of the stored
    original>``, e.g. ``photo-12-9f86d081884c7d65``.

    Image embeddings, Grounding DINO features and vocabulary detections are cached under it.
    The content hash makes a key name one picture only: even if a photo id came back (ids are
    never reused, but databases are restored from backups), another picture gets another key,
    and the same picture the same one (its cached data is then still its own).
    """
    return f"photo-{photo_id}-{hashlib.sha256(original).hexdigest()[:16]}"


def reprompt_file(job_id: str, kind: str) -> str:
    """Storage name (under the photo's prefix) of a re-prompt job's picture, by the job's kind:
    a "words" job's overlay is a JPEG ("<job id>.jpg"), a "point" job's cut-out a PNG with
    alpha ("<job id>.png")."""
    return f"{job_id}.jpg" if kind == "words" else f"{job_id}.png"


class TooManyPendingJobs(Exception):
    """The user already has ``MAX_PENDING_JOBS`` photos waiting; ``retry_after`` in seconds."""

    retry_after = 15

    def __str__(self) -> str:
        return ("You already have several photos waiting. Please wait until they are ready, "
                "then try again.")


def pending_jobs(user: User) -> int:
    """How many of ``user``'s jobs are queued or running."""
    return db.session.scalar(
        select(func.count(Job.id)).join(Photo, Job.photo_id == Photo.id)
        .where(Photo.user_id == user.id, Job.status.in_(("queued", "running")))) or 0


class JobQueue(Protocol):
    """Where the web side hands jobs to workers (the database now, Redis next)."""

    def enqueue(self, job_id: str) -> None:
        """Make the committed job ``job_id`` visible to workers."""


class DatabaseQueue:
    """The embedded default: the committed ``jobs`` row is already the queue entry."""

    def enqueue(self, job_id: str) -> None:
        """Nothing to do: workers poll ``jobs`` for status ``queued``."""


def storage() -> Storage:
    """Return the current app's photo storage (local directory or S3 bucket)."""
    return current_app.extensions["photo_storage"]


def submit_photo(user: User, data: bytes, mode: str, prompt: str | None) -> tuple[Photo, Job]:
    """Store an upload and queue its analysis; nothing is half-written if any step fails.

    Args:
        user: the owner.
        data: the uploaded file's bytes (any size up to MAX_CONTENT_LENGTH).
        mode: ``"everything"`` or ``"grounded"``.
        prompt: the phrases for ``grounded`` mode, e.g. ``"cat, ball"`` (ignored otherwise).

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
    if mode == "grounded":
        prompt = ", ".join(parse_prompt(prompt or ""))
    else:
        prompt = None
    normalised = normalise_upload(data, max_side=current_app.config["MAX_STORED_SIDE"])
    width, height = normalised.size
    photo = Photo(user_id=user.id, width=width, height=height, mode=mode, prompt=prompt)
    db.session.add(photo)
    try:
        db.session.flush()
        store = storage()
        store.put(photo.storage_prefix + ORIGINAL, normalised.jpeg)
        store.put(photo.storage_prefix + THUMB, normalised.thumb_jpeg)
        job = Job(photo=photo)
        db.session.add(job)
        db.session.commit()
    except Exception:
        db.session.rollback()
        if photo.id is not None:
            storage().delete_prefix(photo.storage_prefix)
        raise
    current_app.extensions["job_queue"].enqueue(job.id)
    log.info("queued job %s for photo %s (%s)", job.id, photo.id, mode)
    return photo, job


def delete_photo(photo: Photo) -> None:
    """Delete a photo, its objects, its jobs and its files."""
    prefix = photo.storage_prefix
    db.session.delete(photo)
    db.session.commit()
    storage().delete_prefix(prefix)


def serialize_job(job: Job) -> dict:
    """Return the API view of a job: id, photo id, status, readable error, progress 0-1,
    stage, and ``preview_url``: while an analysis runs and its worker stored a first picture
    (everything mode's masks before their names, :meth:`DatabaseJobSource.preview`), its URL;
    else None."""
    preview = None
    if job.kind == "analyse" and job.status == "running" and job.result:
        if json.loads(job.result).get("preview"):
            preview = url_for("library.file", photo_id=job.photo_id, name=PREVIEW)
    return {"job_id": job.id, "photo_id": job.photo_id, "status": job.status,
            "error": job.error, "progress": round(job.progress or 0.0, 3), "stage": job.stage,
            "preview_url": preview}


class DatabaseJobSource:
    """The worker's side of the database queue (implements :class:`models.worker.JobSource`)."""

    def __init__(self, app: Flask, worker_name: str | None = None) -> None:
        """Serve jobs of ``app``'s database; ``worker_name`` is recorded on claimed jobs."""
        self.app = app
        self.name = worker_name or f"{socket.gethostname()}:{os.getpid()}"
        self.timeout = timedelta(seconds=app.config["JOB_TIMEOUT_S"])

    def recover_stale(self) -> int:
        """Requeue (or fail, after MAX_ATTEMPTS) running jobs whose heartbeat is older than
        ``JOB_TIMEOUT_S``: their worker died. Returns how many jobs were recovered.

        Each job is taken over by a conditional UPDATE (still running, heartbeat still old), so
        of several workers recovering at once one wins, and a job claimed again meanwhile is
        left alone."""
        cutoff = utcnow() - self.timeout
        stale = db.session.execute(select(Job.id, Job.attempts).where(
            Job.status == "running", Job.heartbeat_at < cutoff)).all()
        recovered = 0
        for job_id, attempts in stale:
            give_up = attempts >= MAX_ATTEMPTS
            taken = db.session.execute(
                update(Job).where(Job.id == job_id, Job.status == "running",
                                  Job.heartbeat_at < cutoff)
                .values(status="failed" if give_up else "queued", progress=0.0,
                        stage="failed" if give_up else "waiting to retry"))
            if taken.rowcount == 1:
                job = db.session.get(Job, job_id)
                if give_up:
                    self._mark_failed(job, "The worker stopped while analysing this photo, "
                                           "twice. Please try another photo.")
                elif job.kind == "analyse":
                    job.photo.status = "queued"
                recovered += 1
            db.session.commit()
        return recovered

    def claim(self) -> JobRequest | None:
        """Claim the oldest queued job (atomic conditional UPDATE) and load its photo."""
        with self.app.app_context():
            self.recover_stale()
            candidates = db.session.scalars(
                select(Job.id).where(Job.status == "queued")
                .order_by(case((Job.kind == "analyse", 1), else_=0), Job.created_at).limit(5))
            for job_id in candidates.all():
                request = self.claim_job(job_id)
                if request is not None:
                    return request
            return None

    def claim_job(self, job_id: str) -> JobRequest | None:
        """Claim the job ``job_id`` if it is still queued (atomic conditional UPDATE, so of
        several workers handed the same id exactly one wins) and load its photo.

        Returns:
            The request, or None: the job is gone, not queued (done, failed, or another
            worker's), or its photo file is unreadable (the job is then failed with the reason).
        """
        with self.app.app_context():
            now = utcnow()
            claimed = db.session.execute(
                update(Job).where(Job.id == job_id, Job.status == "queued").values(
                    status="running", worker=self.name, started_at=now, heartbeat_at=now,
                    attempts=Job.attempts + 1, progress=0.0, stage="starting"))
            db.session.commit()
            if claimed.rowcount != 1:
                return None  # another worker won it, or it is no longer queued
            job = db.session.get(Job, job_id)
            if job.kind == "analyse":
                job.photo.status, job.photo.error = "running", None
                db.session.commit()
            try:
                data = storage().get(job.photo.storage_prefix + ORIGINAL)
                image = Image.open(io.BytesIO(data)).convert("RGB")
            except (OSError, StorageError) as exc:
                log.exception("job %s: photo file unreadable", job_id)
                self._mark_failed(job, f"The stored photo could not be read ({exc}).")
                db.session.commit()
                return None
            return JobRequest(job_id=job.id, image=image, mode=job.photo.mode,
                              prompt=job.photo.prompt, key=photo_cache_key(job.photo_id, data),
                              kind=job.kind, params=json.loads(job.params or "{}"))

    def live_keys(self, keys: Iterable[str]) -> set[str]:
        """The cache keys (see :func:`photo_cache_key`) among ``keys`` whose photo is still in
        the library; a key of a deleted photo, or not of this form, is not returned.

        A worker calls this on each claim and forgets the rest, so every worker (database or
        Redis queue, on any machine) drops a deleted photo's cached data by its next job."""
        ids = {key: int(match.group(1)) for key in keys if (match := _CACHE_KEY.fullmatch(key))}
        if not ids:
            return set()
        with self.app.app_context():
            present = set(db.session.scalars(
                select(Photo.id).where(Photo.id.in_(set(ids.values())))))
        return {key for key, photo_id in ids.items() if photo_id in present}

    def progress(self, job_id: str, fraction: float, stage: str) -> None:
        """Record progress (0-1) and the stage name; doubles as the job's heartbeat."""
        with self.app.app_context():
            db.session.execute(update(Job).where(Job.id == job_id, Job.status == "running")
                               .values(progress=max(0.0, min(1.0, fraction)), stage=stage[:100],
                                       heartbeat_at=utcnow()))
            db.session.commit()

    def preview(self, job_id: str, png: bytes) -> None:
        """Store a running analysis's first picture (``PREVIEW`` beside the photo's files) and
        note it on the job (``result`` = {"preview": true}), so the API offers it until the
        job is done. Ignored for a job that is not a running analysis."""
        with self.app.app_context():
            job = db.session.get(Job, job_id)
            if job is None or job.kind != "analyse" or job.status != "running":
                return
            storage().put(job.photo.storage_prefix + PREVIEW, png)
            job.result = json.dumps({"preview": True})
            db.session.commit()

    def complete(self, job_id: str, result: AnalysisResult, picture: bytes) -> None:
        """Store the picture and JSON, then write the objects and mark the job done in one
        transaction. A storage or database error marks the job failed with the reason.

        ``picture``: an analysis's overlay (JPEG, stored as ``OVERLAY``, which is served before
        a photo's ``OLD_OVERLAY`` PNG); a re-prompt's, stored by :func:`reprompt_file`: a
        "words" job's overlay (JPEG), a "point" job's cut-out (PNG)."""
        with self.app.app_context():
            job = db.session.get(Job, job_id)
            if job is None:
                return  # the photo was deleted while it was being analysed
            photo = job.photo
            if job.kind != "analyse":
                self._complete_reprompt(job, result, picture)
                return
            try:
                store = storage()
                store.put(photo.storage_prefix + OVERLAY, picture)
                store.put(photo.storage_prefix + OBJECTS,
                          json.dumps(result.to_json(), separators=(",", ":")).encode())
                photo.objects.clear()
                for rank, obj in enumerate(result.objects):
                    x0, y0, x1, y1 = (float(v) for v in obj.box)
                    photo.objects.append(Detection(
                        rank=rank, label=obj.label, score=float(obj.score), x0=x0, y0=y0, x1=x1,
                        y1=y1, area=int(obj.area), color="#{:02x}{:02x}{:02x}".format(*obj.color)))
                photo.weights = json.dumps(result.weights)
                photo.status, photo.error = "done", None
                job.result = None  # the preview's note: the overlay replaces it
                job.status, job.progress, job.stage = "done", 1.0, "done"
                job.finished_at = utcnow()
                db.session.commit()
            except Exception as exc:  # storage full, database gone: fail the job, keep the photo
                db.session.rollback()
                log.exception("job %s: could not save the result", job_id)
                self.fail(job_id, f"The result could not be saved ({type(exc).__name__}).")

    def _complete_reprompt(self, job: Job, result: AnalysisResult, picture: bytes) -> None:
        """Store a re-prompt's result on its job (JSON) and its picture beside the photo's
        files (:func:`reprompt_file`); the photo's own objects, overlay and status are left as
        they are."""
        try:
            storage().put(job.photo.storage_prefix + reprompt_file(job.id, job.kind), picture)
            job.result = json.dumps(result.to_json(), separators=(",", ":"))
            job.status, job.progress, job.stage = "done", 1.0, "done"
            job.finished_at = utcnow()
            db.session.commit()
        except Exception as exc:
            db.session.rollback()
            log.exception("job %s: could not save the re-prompt result", job.id)
            self.fail(job.id, f"The result could not be saved ({type(exc).__name__}).")

    def fail(self, job_id: str, reason: str) -> None:
        """Mark the job failed with a readable ``reason`` (and its photo, for an analysis job:
        a failed tap leaves the photo's result alone); the photo stays."""
        with self.app.app_context():
            job = db.session.get(Job, job_id)
            if job is not None:
                self._mark_failed(job, reason)
                db.session.commit()

    @staticmethod
    def _mark_failed(job: Job, reason: str) -> None:
        job.status, job.error, job.stage, job.finished_at = "failed", reason, "failed", utcnow()
        if job.kind == "analyse":
            job.photo.status, job.photo.error = "failed", reason
