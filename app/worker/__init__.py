"""The inference worker process (``flask worker``), for either queue.

Loads the models once at boot (``models.service.InferenceService``), beats from a thread
(``app.worker.heartbeat``), runs the recovery chores at every beat (``app.worker.recovery``),
and takes jobs: from the database (``DatabaseJobSource``) by default, from Redis with an RQ
``SimpleWorker`` when ``REDIS_URL`` is set. RQ calls :func:`perform` (its dotted name is
``app.queue.redis.PERFORM``) in the worker's own process, no fork per job, so the models
stay loaded across jobs.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import Flask

from app.queue.database import DatabaseJobSource
from app.worker.heartbeat import BeatingSource, WorkerHeartbeat
from app.worker.recovery import recovery_chores
from models.worker import JobRequest

if TYPE_CHECKING:
    from models.service import InferenceService

log = logging.getLogger(__name__)

__all__ = ["OneJobSource", "perform", "run_worker_process", "worker_name"]


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
        from models.errors import ModelError
        from models.runtime.allocator import tune_allocator
        from models.runtime.scratch import remove_orphans
        from models.service import InferenceService

        tune_allocator()
        remove_orphans()  # scratch files of a worker that died mid-job
        name = worker_name()
        queue = app.extensions["job_queue"]
        heartbeat = WorkerHeartbeat(app, name, queue.name, on_beat=recovery_chores(app, queue))
        heartbeat.start()
        service = InferenceService(app.config["INFERENCE"])
        try:
            service.load()
        except ModelError as exc:
            log.warning("models not loaded (%s); jobs will fail with this message", exc)
        else:
            from app.storage import storage
            from app.worker.decoder import publish_decoder

            with app.app_context():  # the page's tap decoder, from these weights
                publish_decoder(storage(), service)
        heartbeat.set_state("idle")
        _runtime = _Runtime(app, service, heartbeat)
        return _runtime


def run_worker_process(app: Flask, *, max_jobs: int | None = None,
                       poll_interval: float = 1.0) -> int:
    """Run this process as an inference worker of the configured queue until SIGTERM/SIGINT
    (the job in progress is finished first) or ``max_jobs`` jobs.

    Returns:
        The number of jobs analysed (done or failed).

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the database cannot be reached at boot.
    """
    runtime = _start_runtime(app)
    heartbeat = runtime.heartbeat
    queue = app.extensions["job_queue"]
    try:
        if queue.name == "redis":
            _work_redis(app, heartbeat, max_jobs)
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


def _work_redis(app: Flask, heartbeat: WorkerHeartbeat, max_jobs: int | None) -> None:
    """Take jobs from this worker's own queue, then the shared one, with an RQ SimpleWorker
    (which calls :func:`perform`); the own queue is deleted when the worker stops."""
    from redis.exceptions import RedisError
    from rq import SimpleWorker
    from rq.serializers import JSONSerializer

    from app.queue.redis import own_queue_name, redis_connection, rq_queue

    connection = redis_connection(app.config, worker=True)
    own = rq_queue(connection, own_queue_name(heartbeat.name))
    worker = SimpleWorker([own, rq_queue(connection)], name=heartbeat.name,
                          serializer=JSONSerializer)
    try:
        worker.work(max_jobs=max_jobs, logging_level="INFO")
    finally:
        try:  # its waiting jobs stay queued in the database; the sweep moves them on
            own.delete(delete_jobs=True)
        except RedisError:
            log.warning("could not delete the queue %s", own.name, exc_info=True)
