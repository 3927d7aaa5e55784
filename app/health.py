"""Health: ``/healthz`` for the web, and the inference workers' heartbeats for the admin panel.

Every worker process, whatever the queue, runs a :class:`WorkerHeartbeat` thread that writes
its ``workers`` row (state, current job, jobs done) and the ``heartbeat_at`` of the job it
runs every ``WORKER_HEARTBEAT_S`` seconds. A running job whose heartbeat is older than
``JOB_TIMEOUT_S`` therefore belongs to a dead worker (``DatabaseJobSource.recover_stale``),
however long one model stage takes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import SQLAlchemyError

from app.db import Job, WorkerBeat, utcnow
from app.extensions import db
from models.worker import JobRequest, JobSource

log = logging.getLogger(__name__)

bp = Blueprint("health", __name__)

#: A worker is alive while its last beat is younger than this many beat intervals.
ALIVE_BEATS = 3
#: Rows of workers silent for longer than this are deleted when a worker starts.
FORGET_AFTER = timedelta(days=1)


@bp.get("/healthz")
def healthz():
    """Web health for uptime checks: 200 ``{"status": "ok", "database": "ok"}`` when the
    database answers (and Redis, when it is the queue), else 503 naming what is down.
    Needs no login and tells nothing else."""
    checks = {"database": "ok"}
    try:
        db.session.execute(text("SELECT 1"))
    except SQLAlchemyError:
        log.exception("healthz: database unreachable")
        db.session.rollback()
        checks["database"] = "unreachable"
    from app.queues import RedisQueue

    queue = current_app.extensions["job_queue"]
    if isinstance(queue, RedisQueue):
        checks["queue"] = "ok" if queue.ping() else "unreachable"
    healthy = all(value == "ok" for value in checks.values())
    response = jsonify(status="ok" if healthy else "unavailable", **checks)
    response.headers["Cache-Control"] = "no-store"
    return response, 200 if healthy else 503


def alive_cutoff() -> datetime:
    """A worker whose last beat is older than this (ALIVE_BEATS beats ago, current app's
    ``WORKER_HEARTBEAT_S``) is dead or stuck."""
    interval = float(current_app.config["WORKER_HEARTBEAT_S"])
    return utcnow() - timedelta(seconds=ALIVE_BEATS * interval)


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


def worker_status() -> dict[str, Any]:
    """Return the queue's and workers' health for the admin panel (current app).

    Returns:
        ``{"queue": "database"|"redis", "queued": int, "running": int,
        "redis_length": int | None (jobs waiting in Redis; None: not Redis or unreachable),
        "workers": [{"name", "state", "alive", "current_job", "jobs_done", "started_at",
        "heartbeat_at", "last_job_at"}...] (alive first), "workers_alive": int,
        "last_job_at": datetime | None (the last job that ended, done or failed)}``.
    """
    alive_after = alive_cutoff()
    counts = dict(db.session.execute(
        select(Job.status, func.count(Job.id)).where(Job.status.in_(("queued", "running")))
        .group_by(Job.status)).all())
    workers = []
    for row in db.session.scalars(select(WorkerBeat).order_by(WorkerBeat.heartbeat_at.desc())):
        alive = row.state != "stopped" and row.heartbeat_at >= alive_after
        workers.append({"name": row.name, "state": row.state if alive or row.state == "stopped"
                        else "not responding", "alive": alive, "current_job": row.current_job,
                        "jobs_done": row.jobs_done, "started_at": row.started_at,
                        "heartbeat_at": row.heartbeat_at, "last_job_at": row.last_job_at})
    workers.sort(key=lambda w: not w["alive"])
    from app.queues import RedisQueue

    queue = current_app.extensions["job_queue"]
    redis = isinstance(queue, RedisQueue)
    return {
        "queue": "redis" if redis else "database",
        "queued": counts.get("queued", 0),
        "running": counts.get("running", 0),
        "redis_length": queue.length() if redis else None,
        "workers": workers,
        "workers_alive": sum(w["alive"] for w in workers),
        "last_job_at": db.session.scalar(select(func.max(Job.finished_at))),
    }
