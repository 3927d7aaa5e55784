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
import shutil
import socket
import threading
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask
from PIL import Image
from sqlalchemy import case, func, select, text, update
from sqlalchemy.exc import SQLAlchemyError

from app.db import ANALYSIS_KINDS, Job, Photo, PhotoObject, utcnow
from app.extensions import db
from app.files import (
    CLIPS,
    EMBEDDING,
    OBJECTS,
    ORIGINAL,
    OVERLAY,
    OVERLAY_POSTER,
    OVERLAY_VIDEO,
    PREVIEW,
    reprompt_file,
)
from app.storage import StorageError, storage
from models.prompts import phrases_of
from models.result import AnalysisResult
from models.runtime.scratch import scratch_dir
from models.worker import JobRequest

log = logging.getLogger(__name__)

#: A job is tried at most this many times when its worker dies; then it fails with a reason.
MAX_ATTEMPTS = 2

_CACHE_KEY = re.compile(r"photo-(\d+)-[0-9a-f]{16}")
#: A video job's stage while it tracks (``models.video.job``): frames done and in all.


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
        # Local copies of the clips of the video jobs this source handed out: job id ->
        # temporary directory, removed when the job completes or fails.
        self._clips: dict[str, Path] = {}
        self._clips_lock = threading.Lock()

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
                    what = "video" if job.photo.is_video else "photo"
                    self._mark_failed(job, f"The worker stopped while analysing this {what}, "
                                           f"twice. Please try another {what}.")
                elif job.kind in ANALYSIS_KINDS:
                    job.photo.status = "queued"
                recovered += 1
            db.session.commit()
        return recovered

    def claim(self) -> JobRequest | None:
        """Claim the oldest queued job (atomic conditional UPDATE; taps and other re-prompts
        before photo analyses, which take longer, and those before videos, which take longer
        still) and load its photo or clip."""
        with self.app.app_context():
            candidates = db.session.scalars(
                select(Job.id).where(Job.status == "queued")
                .order_by(case((Job.kind == "analyse", 1), (Job.kind == "video", 2), else_=0),
                          Job.created_at).limit(5))
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
            if job.kind in ANALYSIS_KINDS:
                job.photo.status, job.photo.error = "running", None
                db.session.commit()
            if job.kind == "video":
                return self._video_request(job)
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

    def _video_request(self, job: Job) -> JobRequest | None:
        """The request of a claimed "video" job: its stored clip written to a local temporary
        file (PyAV reads files; S3 has none), its mode, phrases and params. An unreadable
        clip fails the job with the reason (None is returned)."""
        video = job.photo
        store = storage()
        tmp = scratch_dir("clip")
        try:
            for name in CLIPS:
                try:
                    store.get_file(video.storage_prefix + name, tmp / name)
                    break
                except FileNotFoundError:
                    continue
            else:
                raise FileNotFoundError("no clip stored")
        except (OSError, StorageError) as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            log.exception("job %s: video file unreadable", job.id)
            self._mark_failed(job, f"The stored video could not be read ({exc}).")
            db.session.commit()
            return None
        with self._clips_lock:
            self._clips[job.id] = tmp
        phrases = phrases_of(video.prompt) if video.prompt else None
        return JobRequest(job_id=job.id, image=None, mode=video.mode, phrases=phrases,
                          key=f"video-{video.id}", kind="video",
                          params=json.loads(job.params or "{}"), video_path=tmp / name)

    def _discard_clip(self, job_id: str) -> None:
        """Remove the local copy of a video job's clip (nothing for other jobs)."""
        with self._clips_lock:
            tmp = self._clips.pop(job_id, None)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)

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
        values: dict[str, Any] = {"progress": max(0.0, min(1.0, fraction)),
                                  "stage": stage[:100], "heartbeat_at": utcnow()}
        with self.app.app_context():
            db.session.execute(update(Job).where(Job.id == job_id, Job.status == "running")
                               .values(**values))
            db.session.commit()

    def video_frames(self, job_id: str, done: int, total: int) -> None:
        """Record a running video job's frames tracked so far and in all (the page shows
        "frame 12 of 50"); doubles as its heartbeat."""
        with self.app.app_context():
            db.session.execute(update(Job).where(Job.id == job_id, Job.status == "running")
                               .values(frames_done=max(0, int(done)),
                                       frames_total=max(0, int(total)), heartbeat_at=utcnow()))
            db.session.commit()

    def video_preview(self, job_id: str, png: bytes) -> None:
        """Store a running video job's first picture (the chosen frame with its first masks,
        ``PREVIEW`` beside the video's files) and note it on the job, so the API offers it
        while the rest is tracked. Ignored for a job that is not a running video job."""
        with self.app.app_context():
            job = db.session.get(Job, job_id)
            if job is None or job.kind != "video" or job.status != "running":
                return
            storage().put(job.photo.storage_prefix + PREVIEW, png)
            job.preview = True
            db.session.commit()

    def complete_video(self, job_id: str, result: Any, overlay_mp4: Path, result_json: bytes,
                       poster_jpeg: bytes) -> None:
        """Store a video job's overlay video, result JSON and poster, write its object rows
        and mark it done, in one transaction; if anything fails, the files written are removed
        and the job fails with the reason (the video stays in the library).

        Args:
            result: ``models.video.output.VideoResult`` (objects, frames, prompt frame,
                weights).
            overlay_mp4: the overlay video (H.264 MP4), a temporary file of the worker's.
            result_json: the JSON download (``VideoResult.json_bytes``).
            poster_jpeg: the overlay's first frame (JPEG), or empty.
        """
        with self.app.app_context():
            try:
                job = db.session.get(Job, job_id)
                if job is None:
                    return  # the video was deleted while it was being tracked
                self._store_video_result(job, result, overlay_mp4, result_json, poster_jpeg)
            finally:
                self._discard_clip(job_id)

    def _store_video_result(self, job: Job, result: Any, overlay_mp4: Path,
                            result_json: bytes, poster_jpeg: bytes) -> None:
        video, store = job.photo, storage()
        written: list[str] = []
        try:
            for name, data in ((OBJECTS, result_json), (OVERLAY_POSTER, poster_jpeg)):
                if data:
                    store.put(video.storage_prefix + name, data)
                    written.append(name)
            store.put_file(video.storage_prefix + OVERLAY_VIDEO, Path(overlay_mp4))
            written.append(OVERLAY_VIDEO)
            video.objects.clear()
            places = _object_places(result)
            for rank, obj in enumerate(result.objects):
                (x0, y0, x1, y1), area = places.get(obj.object_id, ((0.0, 0.0, 0.0, 0.0), 0))
                video.objects.append(PhotoObject(
                    rank=rank, label=obj.label, named=bool(obj.named), color_name=obj.color_name,
                    score=float(obj.score), x0=x0, y0=y0, x1=x1, y1=y1, area=area,
                    color="#{:02x}{:02x}{:02x}".format(*obj.color)))
            video.weights = json.dumps(result.weights)
            video.status, video.error = "done", None
            job.status, job.progress, job.stage = "done", 1.0, "done"
            job.finished_at = utcnow()
            db.session.commit()
        except Exception as exc:  # storage full, database gone: fail the job, keep the video
            db.session.rollback()
            log.exception("job %s: could not save the video result", job.id)
            for name in written:
                try:
                    store.delete(video.storage_prefix + name)
                except StorageError:
                    log.warning("could not remove %s of job %s", name, job.id, exc_info=True)
            self.fail(job.id, f"The result could not be saved ({type(exc).__name__}).")

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
        """Mark the job failed with a readable ``reason`` (and its photo or video, for an
        analysis job: a failed tap leaves the photo's result alone); the item stays. A video
        job's local copy of its clip is removed."""
        try:
            with self.app.app_context():
                job = db.session.get(Job, job_id)
                if job is not None:
                    self._mark_failed(job, reason)
                    db.session.commit()
        finally:
            self._discard_clip(job_id)

    @staticmethod
    def _mark_failed(job: Job, reason: str) -> None:
        job.status, job.error, job.stage, job.finished_at = "failed", reason, "failed", utcnow()
        if job.kind in ANALYSIS_KINDS:
            job.photo.status, job.photo.error = "failed", reason


def _object_places(result: Any) -> dict[int, tuple[tuple[float, float, float, float], int]]:
    """Each followed object's box (xyxy, pixels of the result's frames) and area (pixels) on
    the frame the prompt was on, or else on the first frame where it is present: ``object_id
    -> (box, area)``; an object never present is left out."""
    frames = sorted(result.frames, key=lambda f: (f["frame_index"] != result.prompt_frame,
                                                  f["frame_index"]))
    places: dict[int, tuple[tuple[float, float, float, float], int]] = {}
    for frame in frames:
        for entry in frame["objects"]:
            if entry.get("absent") or entry["object_id"] in places:
                continue
            x0, y0, x1, y1 = (float(v) for v in entry["box"])
            places[entry["object_id"]] = ((x0, y0, x1, y1), int(entry["area"]))
    return places
