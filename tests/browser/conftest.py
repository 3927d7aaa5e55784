"""A live server (web app + one inference worker thread) and headless Debian Chromium."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from app.jobs import DatabaseJobSource

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PHONE = {"width": 390, "height": 844}
TABLET = {"width": 820, "height": 1180}


@pytest.fixture
def live_server(app):
    """Serve ``app`` on a free loopback port with a worker thread draining its queue."""
    from models.service import InferenceService
    from models.worker import run_worker

    server = make_server("127.0.0.1", 0, app, threaded=True)
    web = threading.Thread(target=server.serve_forever, daemon=True)
    web.start()
    stop = threading.Event()
    service = InferenceService(app.config["INFERENCE"])
    worker = threading.Thread(target=run_worker, daemon=True, kwargs={
        "source": DatabaseJobSource(app), "service": service, "stop": stop,
        "poll_interval": 0.2})
    worker.start()
    yield f"http://127.0.0.1:{server.server_port}"
    stop.set()
    server.shutdown()
    worker.join(timeout=60)


@pytest.fixture(scope="session")
def browser():
    """Headless Debian Chromium driven by Playwright (no browser download needed)."""
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is missing: run `make test` (it installs it) or "
                    "`apt-get install chromium`.")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        yield browser
        browser.close()


@pytest.fixture
def screenshot_dir() -> Path:
    """Where tests write screenshots (``test-artifacts/``, not committed)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
