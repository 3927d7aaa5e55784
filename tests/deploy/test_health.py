"""/healthz for the web, and the workers' heartbeat on the admin panel (both queues)."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import update

from app import create_app
from app.db import Job, WorkerBeat, utcnow
from app.extensions import db
from app.queue.database import DatabaseJobSource
from app.worker.heartbeat import BeatingSource, WorkerHeartbeat
from tests.app.test_admin import admin_client
from tests.deploy.conftest import Parent
from tests.processes import free_port


def test_healthz_answers_without_login(make_app):
    response = make_app().test_client().get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok"}
    assert response.headers["Cache-Control"] == "no-store"


def test_healthz_is_503_when_the_database_is_down(tmp_path, service_config):
    app = create_app({"TESTING": True, "SECRET_KEY": "test", "INFERENCE": service_config,
                      "SQLALCHEMY_DATABASE_URI":
                          f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/gone",
                      "STORAGE_DIR": str(tmp_path / "storage")})
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "unavailable", "database": "unreachable"}


def test_healthz_checks_redis_when_it_is_the_queue(make_app, redis_url):
    ok = make_app(REDIS_URL=redis_url).test_client().get("/healthz")
    assert ok.status_code == 200 and ok.get_json()["queue"] == "ok"
    down = make_app(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0").test_client().get("/healthz")
    assert down.status_code == 503
    assert down.get_json() == {"status": "unavailable", "database": "ok", "queue": "unreachable"}


def summary(page: str) -> str:
    match = re.search(r'<p class="lead" id="worker-summary">(.*?)</p>', page, re.S)
    assert match, "no worker summary on /admin"
    return " ".join(re.sub(r"<[^>]+>", "", match.group(1)).split())


def test_heartbeat_keeps_a_slow_job_alive_and_a_dead_workers_job_is_recovered(make_app):
    app = make_app(JOB_TIMEOUT_S=60)
    parent = Parent(app)
    slow, orphan = parent.upload()["job_id"], parent.upload()["job_id"]
    beat = WorkerHeartbeat(app, "alive:1:aa", "database")
    beat.beat()
    assert BeatingSource(DatabaseJobSource(app, beat.name), beat).claim().job_id == slow
    assert DatabaseJobSource(app, "dead:2:bb").claim_job(orphan) is not None
    with app.app_context():  # both silent for an hour: one stage is slow, one worker died
        db.session.execute(update(Job).values(heartbeat_at=utcnow() - timedelta(hours=1)))
        db.session.commit()
    beat.beat()  # the live worker's thread beats, whatever its model is doing
    with app.app_context():
        assert DatabaseJobSource(app).recover_stale() == 1
        assert db.session.get(Job, slow).status == "running"
        assert db.session.get(Job, orphan).status == "queued"


def test_admin_sees_workers_alive_dead_queue_depth_and_last_job(make_app, runner):
    app = make_app(WORKER_HEARTBEAT_S=5)
    admin = admin_client(app, app.test_cli_runner())
    page = admin.get("/admin").get_data(as_text=True)
    assert "No worker has started yet" in page
    assert summary(page).startswith("0 workers alive · 0 photos waiting")
    parent = Parent(app)
    first, second = parent.upload()["job_id"], parent.upload()["job_id"]
    beat = WorkerHeartbeat(app, "worker.1:7:ab12", "database")
    beat.start()
    try:
        source = BeatingSource(DatabaseJobSource(app, beat.name), beat)
        assert source.claim().job_id == first
        source.fail(first, "test: finished")
        with app.app_context():
            db.session.add(WorkerBeat(name="worker.2:9:cd34", queue="database", state="busy",
                                      heartbeat_at=utcnow() - timedelta(minutes=5)))
            db.session.commit()
        beat.beat()
        page = admin.get("/admin").get_data(as_text=True)
    finally:
        beat.stop()
    text = summary(page)
    assert text.startswith("1 worker alive · 1 photo waiting · 0 being analysed")
    assert "last job finished" in text and "never" not in text and "queue: database" in text
    rows = re.findall(r'<tr class="user-row worker-row( worker-row--dead)?">\s*'
                      r'<th scope="row"[^>]*>([^<]+)</th>.*?<span>([^<]+)</span>.*?>(\d+)</td>',
                      page, re.S)
    assert [(dead, name, state, jobs) for dead, name, state, jobs in rows] == [
        ("", "worker.1:7:ab12", "idle", "1"),
        (" worker-row--dead", "worker.2:9:cd34", "not responding", "0")]
    with app.app_context():
        assert db.session.get(WorkerBeat, beat.name).state == "stopped"
        assert db.session.get(Job, second).status == "queued"


def test_admin_sees_the_redis_queue_length(make_app, redis_url):
    app = make_app(REDIS_URL=redis_url)
    parent = Parent(app)
    parent.upload()
    parent.upload()
    page = admin_client(app, app.test_cli_runner()).get("/admin").get_data(as_text=True)
    assert "2 photos waiting (2 in Redis)" in summary(page)
    assert "queue: Redis" in summary(page)
