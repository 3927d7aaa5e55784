"""The queue's and workers' health, as the admin panel shows it."""

from __future__ import annotations

from typing import Any

from flask import current_app
from sqlalchemy import func, select

from app.db import Job, WorkerBeat
from app.extensions import db


def worker_status() -> dict[str, Any]:
    """Return the queue's and workers' health for the admin panel (current app).

    Returns:
        ``{"queue": "database"|"redis", "queued": int, "running": int,
        "redis_length": int | None (jobs waiting in Redis; None: not Redis or unreachable),
        "workers": [{"name", "state", "alive", "current_job", "jobs_done", "started_at",
        "heartbeat_at", "last_job_at"}...] (alive first), "workers_alive": int,
        "last_job_at": datetime | None (the last job that ended, done or failed)}``.
    """
    alive_after = WorkerBeat.alive_cutoff()
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
    queue = current_app.extensions["job_queue"]
    redis = queue.name == "redis"
    return {
        "queue": queue.name,
        "queued": counts.get("queued", 0),
        "running": counts.get("running", 0),
        "redis_length": queue.length() if redis else None,
        "workers": workers,
        "workers_alive": sum(w["alive"] for w in workers),
        "last_job_at": db.session.scalar(select(func.max(Job.finished_at))),
    }
