"""The Redis queue (RQ), and the worker process of either queue (``flask worker``).

With ``REDIS_URL`` set, the web side puts each committed job's id on an RQ queue and any
number of ``flask worker`` processes on any number of machines take them; RQ hands each
entry to one worker (an atomic list move in Redis). The ``jobs`` row stays the source of
truth for status, progress and results: a worker claims the row with the same conditional
UPDATE as the database queue (``DatabaseJobSource.claim_job``), so even an id handed out
twice is analysed once.

A worker that dies mid-job: every worker beats from a thread (``app.health``), so a running
job whose worker has been silent for ``JOB_TIMEOUT_S`` is requeued once and failed with a
reason the second time (``DatabaseJobSource.recover_stale``, run by the surviving workers at
each beat); each beat also puts on the shared queue the queued rows not waiting there (a
requeued job, an enqueue lost while Redis was down, a flushed Redis, a job left in a busy or
dead worker's own queue), so no photo is left waiting forever.

Workers are ``rq.SimpleWorker``s: jobs run in the worker's own process, no fork per job, so
the models loaded at boot stay loaded across jobs. Each takes first from its own queue, where
the jobs of photos whose image embedding it holds are sent, then from the shared one.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from flask import Flask
from sqlalchemy import select

from app.config import redis_tls_options
from app.db import Job, WorkerBeat, utcnow
from app.extensions import db
from app.health import BeatingSource, WorkerHeartbeat, alive_cutoff
from app.jobs import DatabaseJobSource, DatabaseQueue, JobQueue
from models.worker import JobRequest

if TYPE_CHECKING:
    from redis import Redis
    from rq import Queue

    from models.service import InferenceService

log = logging.getLogger(__name__)

QUEUE_NAME = "analysis"
#: The RQ job function (imported by name in the worker).
PERFORM = "app.queues.perform"
#: An analysis running longer than this is stuck: RQ interrupts it and the job fails with
#: the reason (an hour; the slowest measured job, everything mode at 32 points, is ~80 s).
RQ_JOB_TIMEOUT_S = 3600
#: Failed RQ entries are kept this long for inspection (the database row has the reason).
RQ_FAILURE_TTL_S = 7 * 24 * 3600
#: Queued rows younger than this are left to the web's own enqueue by the sweep.
SWEEP_GRACE = timedelta(seconds=5)


def redis_connection(config: Mapping[str, Any], *, worker: bool = False) -> Redis:
    """Return a Redis client for ``REDIS_URL``.

    Web clients time out after 5 s so that a hung Redis cannot hang requests; RQ sets the
    worker's own (longer than its blocking dequeue). ``rediss://`` URLs skip certificate
    checks unless ``REDIS_TLS_VERIFY`` (Heroku Redis uses self-signed certificates).
    """
    from redis import Redis

    url = config["REDIS_URL"]
    options: dict[str, Any] = {"socket_connect_timeout": 5, "health_check_interval": 30,
                               **redis_tls_options(url, bool(config.get("REDIS_TLS_VERIFY")))}
    if not worker:
        options["socket_timeout"] = 5
    return Redis.from_url(url, **options)


def rq_queue(connection: Redis, name: str = QUEUE_NAME) -> Queue:
    """An RQ queue of analysis jobs (the shared one by default), with JSON (not pickle)
    payloads: job ids only."""
    from rq import Queue
    from rq.serializers import JSONSerializer

    return Queue(name, connection=connection, serializer=JSONSerializer)


def own_queue_name(worker: str) -> str:
    """Name of the queue that only the worker ``worker`` takes from (before the shared one):
    jobs of photos whose image embedding it holds."""
    return f"{QUEUE_NAME}.{worker}"


class RedisQueue:
    """The web side of the Redis queue (implements :class:`app.jobs.JobQueue`)."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        """Use ``REDIS_URL`` of ``config``; connects on first use."""
        self.queue = rq_queue(redis_connection(config))

    def enqueue(self, job_id: str) -> None:
        """Put the committed job ``job_id`` (current app context) on the own queue of the
        live worker that last finished a job of the same photo, which holds its image
        embedding (asking again about a photo is then quick), else on the shared queue.

        A job not taken from a worker's own queue within SWEEP_GRACE (the worker is busy or
        died) is put on the shared queue by the sweep. If Redis cannot be reached the error is
        logged, not raised: the row stays ``queued`` and the sweep enqueues it later, so the
        upload still succeeds.
        """
        holder = self._embedding_holder(job_id)
        queue = self.queue if holder is None else rq_queue(self.queue.connection,
                                                           own_queue_name(holder))
        self._push(job_id, queue)

    def _embedding_holder(self, job_id: str) -> str | None:
        """The live worker that last finished a job of ``job_id``'s photo, or None."""
        photo = select(Job.photo_id).where(Job.id == job_id).scalar_subquery()
        worker = db.session.scalar(
            select(Job.worker).where(Job.photo_id == photo, Job.status == "done",
                                     Job.worker.is_not(None))
            .order_by(Job.finished_at.desc()).limit(1))
        if worker is None:
            return None
        return db.session.scalar(select(WorkerBeat.name).where(
            WorkerBeat.name == worker, WorkerBeat.state != "stopped",
            WorkerBeat.heartbeat_at >= alive_cutoff()))

    def _push(self, job_id: str, queue: Queue) -> None:
        """Add an entry for ``job_id`` to ``queue``; a Redis error is logged, not raised."""
        from redis.exceptions import RedisError

        try:
            queue.enqueue(PERFORM, job_id, job_id=f"{job_id}-{secrets.token_hex(4)}",
                          description=f"analyse job {job_id}", result_ttl=0,
                          failure_ttl=RQ_FAILURE_TTL_S, job_timeout=RQ_JOB_TIMEOUT_S)
        except RedisError:
            log.exception("job %s: could not reach Redis; a worker's sweep will enqueue it",
                          job_id)

    def ping(self) -> bool:
        """Return True if Redis answers."""
        from redis.exceptions import RedisError

        try:
            return bool(self.queue.connection.ping())
        except RedisError:
            return False

    def length(self) -> int | None:
        """Entries waiting in Redis, or None if Redis cannot be reached."""
        from redis.exceptions import RedisError

        try:
            return self.queue.count
        except RedisError:
            return None

    def waiting_job_ids(self) -> set[str]:
        """Database job ids waiting in the shared queue. (Entries in a worker's own queue
        are not counted, so that a busy or dead worker's jobs move on; nor entries being run:
        a dead worker's stays in RQ's started registry for an hour, and its job, requeued in
        the database, must go back on the queue.)

        Raises:
            redis.exceptions.RedisError: Redis cannot be reached.
        """
        return {entry.rsplit("-", 1)[0] for entry in self.queue.get_job_ids()}

    def sweep(self) -> int:
        """Put on the shared queue the queued rows older than SWEEP_GRACE that are not waiting
        there (current app context). Returns how many were enqueued; a duplicate (an entry
        being dequeued right now) is harmless: claims are atomic."""
        cutoff = utcnow() - SWEEP_GRACE
        queued = db.session.scalars(select(Job.id).where(
            Job.status == "queued", Job.created_at < cutoff).order_by(Job.created_at)
            .limit(500)).all()
        if not queued:
            return 0
        waiting = self.waiting_job_ids()
        missing = [job_id for job_id in queued if job_id not in waiting]
        for job_id in missing:
            log.info("job %s: still queued, not on the shared queue; enqueueing it there", job_id)
            self._push(job_id, self.queue)
        return len(missing)


def make_queue(config: Mapping[str, Any]) -> JobQueue:
    """Return the configured queue: RedisQueue when ``REDIS_URL`` is set, else the database's."""
    return RedisQueue(config) if config.get("REDIS_URL") else DatabaseQueue()


def worker_name() -> str:
    """A unique name for this worker process: Heroku's dyno (``worker.1``) or the host name,
    the pid, and 4 random hex digits (a restarted dyno often gets the same pid)."""
    host = os.environ.get("DYNO") or socket.gethostname()
    return f"{host[:60]}:{os.getpid()}:{secrets.token_hex(2)}"


class OneJobSource(DatabaseJobSource):
    """The database job source narrowed to the one job RQ handed over: ``claim`` claims
    that job if it is still queued (once), and nothing else."""

    def __init__(self, app: Flask, worker_name: str, job_id: str) -> None:
        """Serve the job ``job_id`` of ``app``'s database to the worker ``worker_name``."""
        super().__init__(app, worker_name)
        self.job_id: str | None = job_id

    def claim(self) -> JobRequest | None:
        """Claim the handed-over job (see ``claim_job``) the first time; then None."""
        job_id, self.job_id = self.job_id, None
        return None if job_id is None else self.claim_job(job_id)


@dataclass
class _Runtime:
    """What the RQ job function needs in a worker process: set once at boot."""

    app: Flask
    service: InferenceService
    heartbeat: WorkerHeartbeat


_runtime: _Runtime | None = None
_runtime_lock = threading.Lock()


def perform(job_id: str) -> str:
    """RQ job function: analyse the database job ``job_id`` in this worker process.

    Returns ``"analysed"`` (done or failed with a reason, in the row) or ``"skipped"`` (the
    job is no longer queued: deleted, or claimed by another worker). Never raises for a job.
    Outside ``flask worker`` (e.g. a plain ``rq worker``) the first call starts the app,
    the heartbeat and the service in this process.
    """
    from models.worker import process_one

    runtime = _runtime or _start_runtime(None)
    source = OneJobSource(runtime.app, runtime.heartbeat.name, job_id)
    handled = process_one(BeatingSource(source, runtime.heartbeat), runtime.service)
    return "analysed" if handled else "skipped"


def _start_runtime(app: Flask | None) -> _Runtime:
    """Create (once per process) the app if none is given, the heartbeat and the inference
    service, and load the models (a ModelError is logged: jobs then fail with its message)."""
    global _runtime
    with _runtime_lock:
        if _runtime is not None:
            return _runtime
        if app is None:
            from app import create_app

            app = create_app()
        from models.allocator import tune_allocator
        from models.errors import ModelError
        from models.service import InferenceService

        tune_allocator()
        name = worker_name()
        queue = app.extensions["job_queue"]
        heartbeat = WorkerHeartbeat(app, name, "redis" if isinstance(queue, RedisQueue)
                                    else "database", on_beat=_recovery(app, queue))
        heartbeat.start()
        service = InferenceService(app.config["INFERENCE"])
        try:
            service.load()
        except ModelError as exc:
            log.warning("models not loaded (%s); jobs will fail with this message", exc)
        heartbeat.set_state("idle")
        _runtime = _Runtime(app, service, heartbeat)
        return _runtime


def _forget(own: Queue) -> None:
    """Delete a stopping worker's own queue (its waiting jobs stay queued in the database,
    and the sweep moves them to the shared queue)."""
    from redis.exceptions import RedisError

    try:
        own.delete(delete_jobs=True)
    except RedisError:
        log.warning("could not delete the queue %s", own.name, exc_info=True)


def _recovery(app: Flask, queue: JobQueue) -> Callable[[], None] | None:
    """The Redis worker's per-beat chores: requeue dead workers' jobs, put rows not waiting
    on the shared queue there. (Database-queue workers recover in every ``claim``.)"""
    if not isinstance(queue, RedisQueue):
        return None
    recoverer = DatabaseJobSource(app, "recovery")

    def chores() -> None:
        recoverer.recover_stale()
        queue.sweep()

    return chores


def run_worker_process(app: Flask, *, max_jobs: int | None = None,
                       poll_interval: float = 1.0) -> int:
    """Run this process as an inference worker of the configured queue until SIGTERM/SIGINT
    (the job in progress is finished first) or ``max_jobs`` jobs.

    Loads the models once at boot, beats every ``WORKER_HEARTBEAT_S``, and takes jobs from
    Redis (an rq SimpleWorker) when ``REDIS_URL`` is set, else from the database.

    Returns:
        The number of jobs analysed (done or failed).

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the database cannot be reached at boot.
    """
    runtime = _start_runtime(app)
    heartbeat = runtime.heartbeat
    queue = app.extensions["job_queue"]
    try:
        if isinstance(queue, RedisQueue):
            from rq import SimpleWorker
            from rq.serializers import JSONSerializer

            connection = redis_connection(app.config, worker=True)
            own = rq_queue(connection, own_queue_name(heartbeat.name))
            worker = SimpleWorker([own, rq_queue(connection)], name=heartbeat.name,
                                  serializer=JSONSerializer)
            try:
                worker.work(max_jobs=max_jobs, logging_level="INFO")
            finally:
                _forget(own)
        else:
            from models.worker import run_worker

            stop = threading.Event()
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: stop.set())
            source = BeatingSource(DatabaseJobSource(app, heartbeat.name), heartbeat)
            run_worker(source, runtime.service, stop=stop,
                       poll_interval=poll_interval, max_jobs=max_jobs)
    finally:
        heartbeat.stop()
    return heartbeat.jobs_done
