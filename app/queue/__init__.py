"""The job queue: where the web side hands committed jobs to inference workers.

Two implementations of one :class:`JobQueue` protocol: the database itself (the default; a
``jobs`` row with status ``queued`` is the entry, ``app.queue.database``) and Redis with RQ
when ``REDIS_URL`` is set (``app.queue.redis``). Either way the ``jobs`` row is the source of
truth for status, progress and results, and a worker claims it with one atomic conditional
UPDATE (:class:`app.queue.database.DatabaseJobSource`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol


class JobQueue(Protocol):
    """The web side of a queue."""

    #: "database" or "redis" (the admin panel and ``/healthz`` show it).
    name: str

    def enqueue(self, job_id: str) -> None:
        """Make the committed job ``job_id`` visible to workers (current app context); never
        raises for an unreachable queue (the row stays ``queued`` and is picked up later)."""

    def ping(self) -> bool:
        """True when the queue answers."""

    def length(self) -> int | None:
        """Jobs waiting, or None when the queue cannot be reached."""


def make_queue(config: Mapping[str, Any]) -> JobQueue:
    """Return the configured queue: Redis when ``REDIS_URL`` is set, else the database's."""
    if config.get("REDIS_URL"):
        from app.queue.redis import RedisQueue

        return RedisQueue(config)
    from app.queue.database import DatabaseQueue

    return DatabaseQueue()
