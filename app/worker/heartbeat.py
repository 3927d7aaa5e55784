"""The heartbeat of an inference worker process, whatever its queue.

Every worker runs a :class:`WorkerHeartbeat` thread that writes its ``workers`` row (state,
current job, jobs done) and the ``heartbeat_at`` of the job it runs every
``WORKER_HEARTBEAT_S`` seconds, however long one model stage takes. A running job whose
heartbeat is older than ``JOB_TIMEOUT_S`` therefore belongs to a dead worker
(``DatabaseJobSource.recover_stale``, run at every beat: ``app.worker.recovery``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from flask import Flask
from sqlalchemy import delete, update
from sqlalchemy.exc import SQLAlchemyError

from app.db import Job, WorkerBeat, utcnow
from app.extensions import db
from models.worker import JobRequest, JobSource

log = logging.getLogger(__name__)

#: Rows of workers silent for longer than this are deleted when a worker starts.
FORGET_AFTER = timedelta(days=1)


class WorkerHeartbeat:
    """The heartbeat of one worker process: a daemon thread writing its ``workers`` row.

    Args:
        app: the Flask app (database).
        name: the worker's unique name, also written on the jobs it claims.
        queue: ``"database"`` or ``"redis"``.
        on_beat: called after each beat in the thread inside an app context (the Redis worker
            recovers dead workers' jobs there); its exceptions are logged, never raised.
    """

    def __init__(self, app: Flask, name: str, queue: str,
                 on_beat: Callable[[], Any] | None = None) -> None:
        """Prepare the heartbeat; nothing is written before :meth:`start`."""
        self.app = app
        self.name = name
        self.queue = queue
        self.interval = float(app.config["WORKER_HEARTBEAT_S"])
        self.on_beat = on_beat
        self.state = "starting"
        self.current_job: str | None = None
        self.jobs_done = 0
        self.last_job_at: datetime | None = None
        self._lock = threading.Lock()
        self._beat_lock = threading.Lock()  # one beat at a time: the last one has the news
        self._stop = threading.Event()
        self._wake = threading.Event()  # beat now: a job started or ended
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Forget long-dead workers, write the first beat, start the thread.

        Raises:
            sqlalchemy.exc.SQLAlchemyError: the database cannot be reached at start.
        """
        with self.app.app_context():
            db.session.execute(delete(WorkerBeat).where(
                WorkerBeat.heartbeat_at < utcnow() - FORGET_AFTER))
            db.session.commit()
        self.beat()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{self.name}",
                                        daemon=True)
        self._thread.start()

    def set_state(self, state: str) -> None:
        """Record the worker's state (``starting``, ``idle``, ``busy``, ``stopped``)."""
        with self._lock:
            self.state = state

    def job_started(self, job_id: str) -> None:
        """Record that the worker now runs ``job_id`` (its heartbeat is kept fresh)."""
        with self._lock:
            self.state, self.current_job = "busy", job_id
        self._wake.set()

    def job_finished(self, job_id: str) -> None:
        """Record that ``job_id`` ended (done or failed); counted once however often called."""
        with self._lock:
            if self.current_job != job_id:
                return
            self.state, self.current_job = "idle", None
            self.jobs_done += 1
            self.last_job_at = utcnow()
        self._wake.set()

    def beat(self) -> None:
        """Write the worker's row and refresh ``heartbeat_at`` of the job it runs (one
        transaction; beats from several threads are serialised).

        Raises:
            sqlalchemy.exc.SQLAlchemyError: the database refused the write.
        """
        with self._beat_lock, self.app.app_context():
            with self._lock:
                values = {"queue": self.queue, "state": self.state,
                          "current_job": self.current_job, "jobs_done": self.jobs_done,
                          "last_job_at": self.last_job_at}
            now = utcnow()
            row = db.session.get(WorkerBeat, self.name)
            if row is None:
                row = WorkerBeat(name=self.name, started_at=now)
                db.session.add(row)
            for key, value in values.items():
                setattr(row, key, value)
            row.heartbeat_at = now
            if values["current_job"]:
                db.session.execute(update(Job).where(
                    Job.id == values["current_job"], Job.status == "running",
                    Job.worker == self.name).values(heartbeat_at=now))
            db.session.commit()

    def _run(self) -> None:
        """Beat every ``interval`` seconds, and at once when a job starts or ends, until
        :meth:`stop`; errors are logged."""
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.beat()
                if self.on_beat is not None:
                    with self.app.app_context():
                        self.on_beat()
            except Exception:
                log.exception("worker %s: heartbeat failed; trying again in %.0f s",
                              self.name, self.interval)

    def stop(self) -> None:
        """Stop the thread and record the worker as ``stopped`` (best effort)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 5)
        self.set_state("stopped")
        try:
            self.beat()
        except SQLAlchemyError:
            log.warning("worker %s: could not record its stop", self.name, exc_info=True)


class BeatingSource:
    """A :class:`models.worker.JobSource` that tells a :class:`WorkerHeartbeat` which job
    the worker runs; everything else is the wrapped source's."""

    def __init__(self, source: JobSource, heartbeat: WorkerHeartbeat) -> None:
        """Wrap ``source``; ``heartbeat`` follows its claimed jobs."""
        self.source = source
        self.heartbeat = heartbeat

    def claim(self) -> JobRequest | None:
        """The wrapped ``claim``; a claimed job becomes the heartbeat's current job."""
        request = self.source.claim()
        if request is not None:
            self.heartbeat.job_started(request.job_id)
        return request

    def progress(self, job_id: str, fraction: float, stage: str) -> None:
        """The wrapped ``progress`` (fraction 0-1)."""
        self.source.progress(job_id, fraction, stage)

    def live_keys(self, keys: Iterable[str]) -> set[str]:
        """The wrapped ``live_keys`` (the cache keys whose photo still exists); all of
        ``keys`` when the wrapped source cannot tell."""
        check = getattr(self.source, "live_keys", None)
        return set(keys) if check is None else check(keys)

    def preview(self, job_id: str, png: bytes) -> None:
        """The wrapped ``preview`` (a running job's first picture), if it has one."""
        store = getattr(self.source, "preview", None)
        if store is not None:
            store(job_id, png)

    def store_embedding(self, job_id: str, data: bytes) -> None:
        """The wrapped ``store_embedding`` (a done photo's image embedding), if it has one."""
        store = getattr(self.source, "store_embedding", None)
        if store is not None:
            store(job_id, data)

    def video_preview(self, job_id: str, png: bytes) -> None:
        """The wrapped ``video_preview`` (a video's first masks), if it has one."""
        store = getattr(self.source, "video_preview", None)
        if store is not None:
            store(job_id, png)

    def video_frames(self, job_id: str, done: int, total: int) -> None:
        """The wrapped ``video_frames`` (a video job's frames tracked), if it has one."""
        record = getattr(self.source, "video_frames", None)
        if record is not None:
            record(job_id, done, total)

    def complete_video(self, job_id: str, result: Any, overlay_mp4: Any, result_json: bytes,
                       poster_jpeg: bytes) -> None:
        """The wrapped ``complete_video`` (a video job's result); then the job is counted as
        finished."""
        try:
            self.source.complete_video(job_id, result, overlay_mp4, result_json, poster_jpeg)
        finally:
            self.heartbeat.job_finished(job_id)

    def complete(self, job_id: str, result: Any, picture: bytes) -> None:
        """The wrapped ``complete`` (``picture``: the job's overlay or cut-out); then the job
        is counted as finished."""
        try:
            self.source.complete(job_id, result, picture)
        finally:
            self.heartbeat.job_finished(job_id)

    def fail(self, job_id: str, reason: str) -> None:
        """The wrapped ``fail``; then the job is counted as finished."""
        try:
            self.source.fail(job_id, reason)
        finally:
            self.heartbeat.job_finished(job_id)
