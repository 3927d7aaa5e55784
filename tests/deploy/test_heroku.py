"""The Heroku files agree with each other and with the app (they cannot be deployed from here:
only PyPI is reachable, so the CPU wheel index and the add-ons are not exercised)."""

from __future__ import annotations

import json
import logging
import re
import tomllib
from pathlib import Path

from models.errors import ModelError

ROOT = Path(__file__).resolve().parents[2]
#: Heroku's dyno memory (MB), from its dyno-type table.
DYNO_MB = {"standard-1x": 512, "standard-2x": 1024, "performance-m": 2560,
           "performance-l": 14336, "performance-l-ram": 30720}
#: Peak RSS measured on the reference stack (random weights, 2 cores): Grounding DINO tiny
#: after a run 3.7 GB, everything mode at 16 points 5.5 GB; the web process ~155 MB with a
#: 2241-px upload.
WORKER_PEAK_MB, WEB_PEAK_MB = 5632, 160


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip())


def test_procfile_app_json_and_python_version_agree():
    procs = procfile()
    assert procs["release"] == "flask --app wsgi db upgrade"  # migrations in release, not web
    assert "${PORT" in procs["web"] and procs["web"].startswith("gunicorn wsgi:app")
    assert procs["worker"].endswith("flask --app wsgi worker --fetch-weights")
    manifest = json.loads((ROOT / "app.json").read_text())
    formation = manifest["formation"]
    assert set(formation) == {"web", "worker"} <= set(procs)
    # two gunicorn processes fit the web dyno; the worker holds both models plus a run
    assert DYNO_MB[formation["web"]["size"]] >= 3 * WEB_PEAK_MB * 2
    assert DYNO_MB[formation["worker"]["size"]] >= 2 * WORKER_PEAK_MB
    plans = {addon["plan"].split(":")[0]: addon["as"] for addon in manifest["addons"]}
    assert plans == {"heroku-postgresql": "DATABASE", "heroku-redis": "REDIS",
                     "bucketeer": "BUCKETEER"}  # DATABASE_URL, REDIS_URL, BUCKETEER_* vars
    env = manifest["env"]
    assert env["SECRET_KEY"]["generator"] == "secret" and env["APP_ENV"]["value"] == "production"
    assert env["PIP_EXTRA_INDEX_URL"]["value"] == "https://download.pytorch.org/whl/cpu"
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    version = (ROOT / ".python-version").read_text().strip()
    assert re.fullmatch(r"3\.\d+", version) and requires == f">={version}"
    slugignore = (ROOT / ".slugignore").read_text()
    assert "/tests" in slugignore and "/models" not in slugignore


def test_worker_fetches_weights_at_boot_and_starts_even_if_that_fails(app, monkeypatch, caplog):
    from app import worker
    from models.runtime import weights

    started = []

    def offline(*args, **kwargs):
        raise ModelError("no network")

    monkeypatch.setattr(weights, "download_mobile_sam", offline)
    monkeypatch.setattr(weights, "download_grounding_dino", offline)
    monkeypatch.setattr(weights, "download_omdet_turbo", offline)
    monkeypatch.setattr(worker, "run_worker_process", lambda app, **kw: started.append(kw) or 0)
    with caplog.at_level(logging.ERROR), app.app_context():  # as the flask command does
        result = app.test_cli_runner().invoke(args=["worker", "--fetch-weights"])
    assert result.exit_code == 0, result.output
    assert "no network" in result.output  # each model's download failure is reported
    assert started == [{"max_jobs": None, "poll_interval": 0.25}]  # and the worker runs
    assert any("could not download" in r.getMessage() for r in caplog.records)
