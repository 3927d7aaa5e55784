"""A live server (web app + one inference worker thread) and headless Debian Chromium."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from app.queue.database import DatabaseJobSource
from tests.conftest import PASSWORD

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PHONE = {"width": 390, "height": 844}
TABLET = {"width": 820, "height": 1180}
PHONE_LANDSCAPE = {"width": 844, "height": 390}
TABLET_LANDSCAPE = {"width": 1180, "height": 820}

#: Replaces the browser's speech synthesis with a recorder (``window.__spoken``: text, rate,
#: voice of every utterance) and counts Web Audio oscillators (``window.__tones``), so tests see
#: what a child would hear without a sound card.
SPEECH_STUB = """
(() => {
  const spoken = [];
  window.__spoken = spoken;
  const voices = [{name: "Test Voice", lang: "en-GB", voiceURI: "test-voice", default: true,
                   localService: true}];
  window.SpeechSynthesisUtterance = class {
    constructor(text) { this.text = text; this.rate = 1; this.pitch = 1; this.voice = null;
                        this.lang = ""; }
  };
  Object.defineProperty(window, "speechSynthesis", {configurable: true, value: {
    speak(u) { spoken.push({text: u.text, rate: u.rate, lang: u.lang,
                            voice: u.voice ? u.voice.name : null}); },
    cancel() {}, pause() {}, resume() {}, getVoices() { return voices; },
    addEventListener() {}, removeEventListener() {},
    speaking: false, pending: false, paused: false,
  }});
  window.__tones = 0;
  const Ctx = window.AudioContext;
  if (Ctx) {
    const create = Ctx.prototype.createOscillator;
    Ctx.prototype.createOscillator = function () { window.__tones += 1; return create.call(this); };
  }
})();
"""


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


@pytest.fixture
def web_server(app):
    """Serve ``app`` on a free loopback port without a worker (tests finish jobs themselves)."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    web = threading.Thread(target=server.serve_forever, daemon=True)
    web.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


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


@pytest.fixture
def new_page(browser):
    """Factory of pages at a viewport (phone or tablet), touch-enabled, with speech recorded
    (SPEECH_STUB) and page errors collected in ``page.errors``. Contexts close at teardown."""
    contexts = []

    def make(size: dict, *, mobile: bool | None = None):
        """A new touch page at ``size`` in its own browser context."""
        context = browser.new_context(
            viewport=size, device_scale_factor=2, has_touch=True,
            is_mobile=size["width"] < 600 if mobile is None else mobile)
        context.add_init_script(SPEECH_STUB)
        contexts.append(context)
        page = context.new_page()
        page.errors = []
        page.on("pageerror", lambda exc: page.errors.append(str(exc)))
        return page

    yield make
    for context in contexts:
        context.close()


def serious_violations(page) -> list[str]:
    """axe-core's serious and critical accessibility violations on the page, readable."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [f"{v['id']} ({v['impact']}): {v['help']} at "
            + ", ".join(str(n["target"]) for n in v["nodes"][:3])
            for v in results.response["violations"] if v["impact"] in ("serious", "critical")]


def small_touch_targets(page, minimum: int = 48) -> list[str]:
    """Visible buttons, fields and stand-alone links smaller than ``minimum`` CSS pixels
    (links inside running text are exempt, as in WCAG 2.5.8)."""
    lines = (Path(__file__).parent / "touch_targets.js").read_text().splitlines()
    script = "\n".join(line for line in lines if not line.startswith("//"))  # a function
    return page.evaluate(script, minimum)


def sign_up(page, base: str, email: str) -> None:
    """Create an account through the sign-up form; ends on the upload page."""
    page.goto(f"{base}/register")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.fill("input[name=confirm]", PASSWORD)
    page.locator("form button[type=submit], form input[type=submit]").last.click()
    page.wait_for_url(f"{base}/")


def tap_photo(page, x: float, y: float) -> None:
    """Tap the result photo at photo pixel (x, y), as a finger would."""
    img = page.locator("[data-result] .result-img")
    img.scroll_into_view_if_needed()
    width, height = (float(v) for v in img.evaluate(
        "i => [i.getAttribute('width'), i.getAttribute('height')]"))
    box = img.bounding_box()
    img.tap(position={"x": x / width * box["width"], "y": y / height * box["height"]})


def spoken(page) -> list[str]:
    """Everything said aloud so far (SPEECH_STUB)."""
    return [u["text"] for u in page.evaluate("window.__spoken")]
