"""The one stale-job recovery loop, run by every live worker at every heartbeat.

A running job whose worker has been silent for ``JOB_TIMEOUT_S`` is requeued once and failed
with a reason the second time (``DatabaseJobSource.recover_stale``); with Redis, the queued
rows not waiting on the shared queue are put there (``RedisQueue.sweep``).
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask

from app.queue import JobQueue
from app.queue.database import DatabaseJobSource


def recovery_chores(app: Flask, queue: JobQueue) -> Callable[[], None]:
    """The chores a worker of ``app`` runs after each beat (inside an app context; the
    heartbeat logs their errors): recover dead workers' jobs, then sweep the queue if it has
    a ``sweep``."""
    recoverer = DatabaseJobSource(app, "recovery")
    sweep = getattr(queue, "sweep", None)

    def chores() -> None:
        recoverer.recover_stale()
        if sweep is not None:
            sweep()

    return chores
