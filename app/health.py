"""Web health for uptime checks: ``/healthz``."""

from __future__ import annotations

import logging

from flask import Blueprint, current_app, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app.extensions import db

log = logging.getLogger(__name__)

bp = Blueprint("health", __name__)


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
    queue = current_app.extensions["job_queue"]
    if queue.name != "database":
        checks["queue"] = "ok" if queue.ping() else "unreachable"
    healthy = all(value == "ok" for value in checks.values())
    response = jsonify(status="ok" if healthy else "unavailable", **checks)
    response.headers["Cache-Control"] = "no-store"
    return response, 200 if healthy else 503
