"""The Redis queue (RQ), used when ``REDIS_URL`` is set: the web side's half.

The web side puts each committed job's id on an RQ queue and any number of ``flask worker``
processes on any number of machines take them (``app.worker``); RQ hands each entry to one
worker (an atomic list move in Redis). The ``jobs`` row stays the source of truth: a worker
claims the row with the same conditional UPDATE as the database queue
(``DatabaseJobSource.claim_job``), so even an id handed out twice is analysed once.

Each worker takes first from its own queue, where the jobs of photos whose image embedding it
holds are sent, then from the shared one. Every beat of every worker puts on the shared queue
the queued rows not waiting there (:meth:`RedisQueue.sweep`: a requeued job, an enqueue lost
while Redis was down, a flushed Redis, a job left in a busy or dead worker's own queue), so no
photo is left waiting forever.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from app.config import redis_tls_options
from app.db import Job, WorkerBeat, utcnow
from app.extensions import db

if TYPE_CHECKING:
    from redis import Redis
    from rq import Queue

log = logging.getLogger(__name__)

QUEUE_NAME = "analysis"
#: The RQ job function, imported by name in the worker (``app.worker.perform``).
PERFORM = "app.worker.perform"
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
    """The web side of the Redis queue (implements :class:`app.queue.JobQueue`)."""

    name = "redis"

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
            WorkerBeat.heartbeat_at >= WorkerBeat.alive_cutoff()))

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
