"""Start the real processes (gunicorn web, ``flask worker``) on loopback for system tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def app_env(tmp_path: Path, service_config, **extra: str) -> dict[str, str]:
    """Environment for web and worker processes: SQLite and storage in ``tmp_path``, the
    random-weight test checkpoints (allowed explicitly), rate limits off unless ``extra``
    turns them on."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "WERKZEUG_"))}
    env.update({
        "SECRET_KEY": "system-test",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}",
        "STORAGE_DIR": str(tmp_path / "storage"),
        "MODEL_DIR": str(tmp_path / "models"),
        "MOBILE_SAM_CHECKPOINT": str(service_config.mobile_sam_checkpoint),
        "GROUNDING_DINO_MODEL": str(service_config.grounding_dino_model),
        "OMDET_TURBO_MODEL": str(service_config.omdet_turbo_model),
        "ALLOW_UNVERIFIED_WEIGHTS": "1",
        "RATELIMIT_ENABLED": "0",
        "MALLOC_MMAP_THRESHOLD_": "1073741824",
        "MALLOC_TRIM_THRESHOLD_": "4294967296",
        "PYTHONUNBUFFERED": "1",
    })
    env.update(extra)
    return env


def migrate(env: Mapping[str, str]) -> None:
    """``flask db upgrade`` in a subprocess (as the Procfile's release phase does)."""
    subprocess.run([str(BIN / "flask"), "--app", "wsgi", "db", "upgrade"], cwd=ROOT,
                   env=dict(env), check=True, capture_output=True)


def wait_http(url: str, timeout: float = 60.0) -> None:
    """Wait until ``url`` answers (any status); raises TimeoutError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=10)
            return
        except (requests.ConnectionError, requests.Timeout):
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


@contextmanager
def web_server(env: Mapping[str, str], log: Path, workers: int = 2,
               threads: int = 8) -> Iterator[str]:
    """Run gunicorn as the Procfile does, on a free loopback port; yields the base URL."""
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "gunicorn"), "wsgi:app", "--bind", f"127.0.0.1:{port}",
             "--workers", str(workers), "--threads", str(threads), "--timeout", "30"],
            cwd=ROOT, env=dict(env), stdout=out, stderr=subprocess.STDOUT)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_http(base + "/login")
            yield base
        finally:
            proc.terminate()
            proc.wait(timeout=30)


@contextmanager
def worker_process(env: Mapping[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """Run ``flask worker`` (the Procfile's worker) until the block ends."""
    with log.open("wb") as out:
        proc = subprocess.Popen([str(BIN / "flask"), "--app", "wsgi", "worker", "--poll", "0.2"],
                                cwd=ROOT, env=dict(env), stdout=out, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
