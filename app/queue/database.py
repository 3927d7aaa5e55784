"""The database as the queue: a ``jobs`` row with status ``queued`` *is* the queue entry.

Workers claim rows with an atomic conditional UPDATE, which works on SQLite and PostgreSQL
alike, so of several workers handed the same job exactly one runs it; the same source serves
the Redis queue's workers (``app.worker.OneJobSource``). A job whose worker died is requeued
once, then failed with a reason (:meth:`DatabaseJobSource.recover_stale`).
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

from flask import Flask
from PIL import Image
from sqlalchemy import case, func, select, text, update
from sqlalchemy.exc import SQLAlchemyError

from app.db import Job, Photo, PhotoObject, utcnow
from app.extensions import db
from app.files import EMBEDDING, OBJECTS, ORIGINAL, OVERLAY, PREVIEW, reprompt_file
from app.storage import StorageError, storage
from models.prompts import phrases_of
from models.result import AnalysisResult
from models.worker import JobRequest

log = logging.getLogger(__name__)

#: A job is tried at most this many times when its worker dies; then it fails with a reason.
MAX_ATTEMPTS = 2

_CACHE_KEY = re.compile(r"photo-(\d+)-[0-9a-f]{16}")


def photo_cache_key(photo_id: int, original: bytes) -> str:
    """The worker's cache key of a photo: ``photo-<id>-<first 16 hex of SHA-256 of the stored
    original>``, e.g. ``photo-12-9f86d081884c7d65``.

    Image embeddings, detector features and vocabulary detections are cached under it.
    The content hash makes a key name one picture only: even if a photo id came back (ids are
    never reused, but databases are restored from backups), another picture gets another key,
    and the same picture the same one (its cached data is then still its own).
    """
    return f"photo-{photo_id}-{hashlib.sha256(original).hexdigest()[:16]}"


class DatabaseQueue:
    """The embedded default: the committed ``jobs`` row is already the queue entry."""

    name = "database"

    def enqueue(self, job_id: str) -> None:
        """Nothing to do: workers poll ``jobs`` for status ``queued``."""

    def ping(self) -> bool:
        """True when the database answers (current app context)."""
        try:
            db.session.execute(text("SELECT 1"))
        except SQLAlchemyError:
            db.session.rollback()
            return False
        return True

    def length(self) -> int | None:
        """Jobs queued in the database (current app context), or None if it cannot be read."""
        try:
            return db.session.scalar(select(func.count(Job.id)).where(Job.status == "queued"))
        except SQLAlchemyError:
            db.session.rollback()
            return None


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
        with self.app.app_context():
            return self._recover_stale()

    def _recover_stale(self) -> int:
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
        """Claim the oldest queued job (atomic conditional UPDATE; taps and other re-prompts
        before analyses, which take longer) and load its photo."""
        with self.app.app_context():
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
                image = Image.open(io.BytesIO(data))
                image.load()  # stored upright and RGB by the upload (app.imaging); checked
                if image.mode != "RGB":  # by the service, converted here only if it is not
                    image = image.convert("RGB")
            except (OSError, StorageError) as exc:
                log.exception("job %s: photo file unreadable", job_id)
                self._mark_failed(job, f"The stored photo could not be read ({exc}).")
                db.session.commit()
                return None
            params = json.loads(job.params or "{}")
            # Stored as parsed on the way in (app.photos.service): joined phrases, split again.
            text = params.get("prompt") if job.kind == "words" else job.photo.prompt
            phrases = phrases_of(text) if isinstance(text, str) else None
            if job.kind == "words" and phrases is None:
                phrases = []  # the service refuses it with a readable reason
            return JobRequest(job_id=job.id, image=image, mode=job.photo.mode, phrases=phrases,
                              key=photo_cache_key(job.photo_id, data), kind=job.kind,
                              params=params)  # fmt: skip

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
        note it on the job (``Job.preview``), so the API offers it while the job runs.
        Ignored for a job that is not a running analysis."""
        with self.app.app_context():
            job = db.session.get(Job, job_id)
            if job is None or job.kind != "analyse" or job.status != "running":
                return
            storage().put(job.photo.storage_prefix + PREVIEW, png)
            job.preview = True
            db.session.commit()

    def store_embedding(self, job_id: str, data: bytes) -> None:
        """Store an analysis's image embedding (``EMBEDDING`` beside the photo's files, for
        taps decoded by the page). Ignored for a job that is not a running analysis."""
        with self.app.app_context():
            job = db.session.get(Job, job_id)
            if job is None or job.kind != "analyse" or job.status != "running":
                return
            storage().put(job.photo.storage_prefix + EMBEDDING, data)

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
                    photo.objects.append(PhotoObject(
                        rank=rank, label=obj.label, named=bool(obj.named),
                        color_name=obj.color_name,
                        score=float(obj.score), x0=x0, y0=y0, x1=x1, y1=y1, area=int(obj.area),
                        color="#{:02x}{:02x}{:02x}".format(*obj.color)))
                photo.weights = json.dumps(result.weights)
                photo.status, photo.error = "done", None
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
