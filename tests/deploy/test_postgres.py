"""PostgreSQL (psycopg 3) as on Heroku: migrations, the release command with Heroku's
``postgres://`` URL, an upload analysed end to end, and workers racing for jobs."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect, select

from app.config import database_url
from app.db import Job
from app.extensions import db
from app.queue.database import DatabaseJobSource
from tests.deploy.conftest import Parent

ROOT = Path(__file__).resolve().parents[2]
TABLES = {"users", "photos", "photo_objects", "jobs", "workers", "alembic_version"}


def test_heroku_urls_select_psycopg3(tmp_path):
    assert database_url({"DATABASE_URL": "postgres://u:p@db.example:5432/d1"}, tmp_path) == \
        "postgresql+psycopg://u:p@db.example:5432/d1"
    assert database_url({"DATABASE_URL": "postgresql://u@h/d"}, tmp_path) == \
        "postgresql+psycopg://u@h/d"
    assert database_url({}, tmp_path) == f"sqlite:///{tmp_path / 'visionanything.db'}"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migrations_go_up_down_and_up_and_match_the_tables(make_app, request, backend):
    config = {}
    if backend == "postgresql":
        config["SQLALCHEMY_DATABASE_URI"] = request.getfixturevalue("pg_url")
    app = make_app(**config)  # upgraded to head
    with app.app_context():
        assert TABLES <= set(inspect(db.engine).get_table_names())
        downgrade(revision="base")
        assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
        upgrade()
        assert TABLES <= set(inspect(db.engine).get_table_names())
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), db.metadata)
        assert diff == [], f"tables and migrations differ on {backend}: {diff}"


def test_release_command_migrates_a_heroku_postgres_url(postgres, pg_url, tmp_path):
    heroku_url = pg_url.replace("postgresql+psycopg://", "postgres://")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DATABASE_URL": heroku_url,
           "SECRET_KEY": "release-test", "APP_ENV": "production"}
    # the Procfile's release line: flask --app wsgi db upgrade
    done = subprocess.run([str(Path(sys.executable).parent / "flask"), "--app", "wsgi", "db",
                           "upgrade"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    with psycopg.connect(pg_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        tables = {row[0] for row in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert TABLES <= tables


def test_upload_is_analysed_listed_and_deleted_on_postgres(make_app, pg_url, service):
    from models.worker import process_one

    app = make_app(SQLALCHEMY_DATABASE_URI=pg_url)
    parent = Parent(app)
    client, auth = parent.client, parent.auth
    ids = parent.upload("car-and-bicycle.jpg", prompt="car, bicycle")
    assert process_one(DatabaseJobSource(app), service) is True
    job = client.get(f"/api/v1/jobs/{ids['job_id']}").get_json()
    assert job["status"] == "done" and job["progress"] == 1.0, job
    photo = client.get(f"/api/v1/photos/{ids['photo_id']}").get_json()
    assert photo["status"] == "done" and photo["prompt"] == "car, bicycle"
    assert client.get(photo["overlay_url"]).status_code == 200
    assert [p["id"] for p in client.get("/api/v1/photos").get_json()["photos"]] == \
        [ids["photo_id"]]
    response = client.delete(f"/api/v1/photos/{ids['photo_id']}", headers=auth.api_headers())
    assert response.status_code == 204
    with app.app_context():
        assert db.session.scalars(select(Job)).all() == []


def test_workers_racing_on_postgres_claim_each_job_once(make_app, pg_url):
    app = make_app(SQLALCHEMY_DATABASE_URI=pg_url, MAX_PENDING_JOBS=50)
    job_ids = []
    for n in range(3):
        parent = Parent(app, f"racer{n}@example.com")
        job_ids += [parent.upload()["job_id"] for _ in range(3)]
    claimed: dict[str, list[str]] = {}
    start = threading.Barrier(4)

    def drain(name: str) -> None:
        source = DatabaseJobSource(app, name)
        mine = claimed.setdefault(name, [])
        start.wait()
        while (request := source.claim()) is not None:
            mine.append(request.job_id)

    threads = [threading.Thread(target=drain, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    everything = [job_id for ids in claimed.values() for job_id in ids]
    assert sorted(everything) == sorted(job_ids)  # every job once, none twice
    with app.app_context():
        jobs = db.session.scalars(select(Job)).all()
        assert {j.status for j in jobs} == {"running"} and {j.attempts for j in jobs} == {1}
        assert {j.worker for j in jobs} <= set(claimed)
