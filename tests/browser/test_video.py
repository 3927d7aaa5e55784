"""Videos in real Chromium at phone and tablet size: a clip made from a shared photo is chosen
on the upload page, an object tapped on a paused frame, the job done by a real worker (small
random-weight SAM 2 video model), the overlay video and JSON checked, the library's play
badge and another account's 404; progress while a job runs (frames done / total, the first
masks); Tap & hear and Find it! on a paused frame with that frame's masks; a clip the browser
cannot show still sent. Every page: axe clean, 48 px targets, no script errors, screenshots in
test-artifacts/video/."""

from __future__ import annotations

import io
import json
import re
import threading

import av
import numpy as np
import pytest
from PIL import Image
from werkzeug.serving import make_server

from app.queue.database import DatabaseJobSource
from models.segment.rle import rle_to_mask
from tests.browser.conftest import (
    PHONE,
    PHONE_LANDSCAPE,
    TABLET,
    serious_violations,
    sign_up,
    small_touch_targets,
    spoken,
)
from tests.videos import make_clip

#: The clip: 2 s at 10 frames per second, 320x240, a pan across dog.jpg.
FRAMES, SIZE = 20, (320, 240)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """The clip file, as a phone would have it (sound and all)."""
    return make_clip(tmp_path_factory.mktemp("clips") / "dog.mp4", audio=True)


@pytest.fixture
def video_server(app, video_service_config):
    """Serve ``app`` with one worker thread whose service has the small SAM 2 video model."""
    from models.service import InferenceService
    from models.worker import run_worker

    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    stop = threading.Event()
    worker = threading.Thread(target=run_worker, daemon=True, kwargs={
        "source": DatabaseJobSource(app), "service": InferenceService(video_service_config),
        "stop": stop, "poll_interval": 0.2})
    worker.start()
    yield f"http://127.0.0.1:{server.server_port}"
    stop.set()
    server.shutdown()
    worker.join(timeout=120)


def check(page, problems: list[str], name: str, shots, *, axe: bool = True) -> None:
    """axe (serious/critical), 48 px targets and a full-page screenshot of ``page``."""
    page.wait_for_timeout(300)  # pop-in animations
    if axe:
        problems += [f"{name}: {v}" for v in serious_violations(page)]
    problems += [f"{name}: small {t}" for t in small_touch_targets(page)]
    page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
    page.screenshot(path=str(shots / f"{name}-screen.png"))  # what the screen shows


def decoded(data: bytes) -> tuple[int, tuple[int, int]]:
    """Frames and (width, height) of an encoded video, every frame decoded with PyAV."""
    with av.open(io.BytesIO(data)) as container:
        frames = list(container.decode(container.streams.video[0]))
    return len(frames), (frames[0].width, frames[0].height)


def inside(mask: np.ndarray) -> tuple[int, int]:
    """A pixel (x, y) deep inside ``mask`` (the farthest from its edge along rows)."""
    ys, xs = np.nonzero(mask)
    i = len(xs) // 2
    return int(xs[i]), int(ys[i])


def test_a_video_is_filmed_tapped_followed_and_played_back(app, video_server, new_page, clip,
                                                          screenshot_dir):
    base, problems = video_server, []
    shots = screenshot_dir / "video"
    shots.mkdir(exist_ok=True)
    page = new_page(PHONE)
    sign_up(page, base, "parent@example.com")

    page.set_input_files("#video-library", str(clip))
    page.wait_for_selector("[data-frame-picker].is-ready")
    assert page.locator("#mode-point").is_checked()  # a video: tap what to follow
    layer = page.locator("[data-tap-layer]")
    box = layer.bounding_box()
    layer.tap(position={"x": box["width"] * 0.5, "y": box["height"] * 0.55})
    assert page.locator(".tap-dot").count() == 1
    check(page, problems, "upload-video-phone", shots)
    page.set_viewport_size(TABLET)
    check(page, problems, "upload-video-tablet", shots, axe=False)
    page.set_viewport_size(PHONE)

    page.locator("[data-upload-form] button[type=submit]").click()
    page.wait_for_url(re.compile(r".*/videos/\d+$"), timeout=60_000)
    video_id = int(page.url.rsplit("/", 1)[1])
    page.wait_for_selector("[data-video-result]", timeout=180_000)  # the worker is done
    page.wait_for_selector("[data-video-result][data-masks=ready]")
    video = page.request.get(f"{base}/api/v1/videos/{video_id}").json()
    assert video["status"] == "done" and video["mode"] == "point"
    assert len(video["objects"]) == 1

    # The overlay plays inline and decodes with the clip's frames and size.
    player = page.locator('[data-video-result] video[data-slot="video"]')
    for attribute in ("playsinline", "muted", "controls"):
        assert player.evaluate(f"v => v.hasAttribute('{attribute}')"), attribute
    assert player.get_attribute("poster") == video["overlay_poster_url"]
    page.wait_for_function("() => document.querySelector('[data-slot=video]').readyState >= 1")
    assert player.evaluate("v => [v.videoWidth, v.videoHeight]") == list(SIZE)
    assert decoded(page.request.get(base + video["overlay_url"]).body()) == (FRAMES, SIZE)
    doc = page.request.get(base + video["json_url"]).json()
    assert len(doc["frames"]) == FRAMES
    masks = {}
    for frame in doc["frames"]:
        for entry in frame["objects"]:
            if not entry.get("absent"):
                mask = rle_to_mask(entry["mask"])
                assert mask.shape == SIZE[::-1] and int(mask.sum()) == entry["area"]
                masks.setdefault(frame["frame_index"], (frame["time_s"], mask))
    check(page, problems, "filmed-done-phone", shots)
    page.set_viewport_size(TABLET)
    check(page, problems, "filmed-done-tablet", shots, axe=False)
    page.set_viewport_size(PHONE)

    # Tap & hear on a paused frame where the object is: its name is said.
    page.locator('[data-activity="hear"]').click()
    assert player.evaluate("v => v.paused && !v.controls")
    if masks:  # random weights may lose the object on every frame
        index, (time_s, mask) = next(iter(masks.items()))
        player.evaluate(f"v => {{ v.currentTime = {time_s + 0.01}; }}")
        page.wait_for_selector(f"[data-video-result][data-frame='{index}']")
        x, y = inside(mask)
        stage = player.bounding_box()
        player.tap(position={"x": x / SIZE[0] * stage["width"],
                             "y": y / SIZE[1] * stage["height"]}, force=True)
        label = video["objects"][0]["label"]
        expected = label if video["objects"][0]["named"] else "not sure"
        page.wait_for_function("() => window.__spoken.length > 0")
        assert any(expected in text for text in spoken(page)), spoken(page)
        check(page, problems, "filmed-tap-and-hear-phone", shots)
    page.locator('[data-activity="watch"]').click()
    assert player.evaluate("v => v.controls")

    page.goto(f"{base}/library")
    card = page.locator(f'.photo-card:has(a[href="/videos/{video_id}"])')
    assert card.locator(".play-badge").inner_text().strip() == "0:02"
    check(page, problems, "library-video-phone", shots)
    assert page.errors == []

    stranger = new_page(PHONE)
    sign_up(stranger, base, "stranger@example.com")
    for url in (f"/videos/{video_id}", video["overlay_url"], video["json_url"],
                video["clip_url"], f"/api/v1/videos/{video_id}"):
        assert stranger.request.get(base + url).status == 404, url
    assert problems == []


def test_progress_shows_frames_done_and_the_first_masks(app, web_server, new_page, clip,
                                                        video_service_config, screenshot_dir):
    """While the rest is tracked, the page shows frames done / total and the first masks; when
    the job is done it shows the overlay video."""
    from models.service import InferenceService
    from models.video.job import run_video_job

    base, problems = web_server, []
    shots = screenshot_dir / "video"
    shots.mkdir(exist_ok=True)
    page = new_page(PHONE)
    sign_up(page, base, "parent@example.com")
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    answer = page.request.post(f"{base}/api/v1/videos", headers={"X-CSRFToken": token},
                               multipart={"mode": "point", "points": "[[0, 160, 130]]",
                                          "video": {"name": "dog.mp4", "mimeType": "video/mp4",
                                                    "buffer": clip.read_bytes()}})
    assert answer.status == 202, answer.text()
    ids = answer.json()
    page.goto(f"{base}/videos/{ids['video_id']}")
    check(page, problems, "video-queued-phone", shots)

    source = DatabaseJobSource(app)
    request = source.claim()
    source.progress(request.job_id, 0.4, "Tracking: frame 4 of 10")
    source.video_frames(request.job_id, 4, 10)
    preview = io.BytesIO()
    Image.new("RGB", SIZE, (230, 25, 75)).save(preview, "PNG")
    source.video_preview(request.job_id, preview.getvalue())
    card = page.locator("[data-video-progress]")
    page.wait_for_selector("[data-video-progress][data-preview=shown][data-frames-done='4']")
    assert card.locator('[data-slot="stage"]').inner_text() == "Frame 4 of 10"
    assert card.locator('[data-slot="bar"]').get_attribute("value") == "40"
    assert card.locator('[data-slot="progress-img"]').get_attribute("src").endswith(
        f"/videos/{ids['video_id']}/preview.png")
    check(page, problems, "video-progress-phone", shots)
    page.set_viewport_size(TABLET)
    check(page, problems, "video-progress-tablet", shots, axe=False)

    def report(fraction: float, stage: str) -> None:
        source.progress(request.job_id, fraction, stage)

    run_video_job(request, InferenceService(video_service_config), source, report)
    page.wait_for_selector("[data-video-result]", timeout=60_000)  # the page reloaded itself
    assert json.loads(page.request.get(f"{base}/api/v1/jobs/{ids['job_id']}").text())[
        "status"] == "done"
    assert page.errors == [] and problems == []


def dog_box(index: int):
    """The dog's rectangle on frame ``index`` (it moves left 3 px a frame), gone from 15 on."""
    return None if index >= 15 else (100 - 3 * index, 60, 220 - 3 * index, 200)


def ball_box(index: int):
    """A ball that stays put in every frame."""
    return (250, 150, 300, 200)


def test_tap_and_hear_and_find_it_on_a_paused_frame(app, web_server, new_page, clip,
                                                     screenshot_dir):
    """Tap & hear and Find it! pause the video and use the frame shown: its masks, with the
    object that left the picture absent there."""
    from tests.videos import finish_video_job

    base, problems = web_server, []
    shots = screenshot_dir / "video"
    shots.mkdir(exist_ok=True)
    page = new_page(PHONE)
    sign_up(page, base, "parent@example.com")
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    answer = page.request.post(f"{base}/api/v1/videos", headers={"X-CSRFToken": token},
                               multipart={"mode": "point", "points": "[[0, 150, 120]]",
                                          "video": {"name": "dog.mp4", "mimeType": "video/mp4",
                                                    "buffer": clip.read_bytes()}})
    video_id = answer.json()["video_id"]
    finish_video_job(app, [("dog", True, "brown", dog_box), ("ball", True, "red", ball_box)])
    page.goto(f"{base}/videos/{video_id}")
    page.wait_for_selector("[data-video-result][data-masks=ready]")
    player = page.locator('video[data-slot="video"]')
    page.wait_for_function("() => document.querySelector('[data-slot=video]').readyState >= 2")
    check(page, problems, "video-done-phone", shots)
    page.set_viewport_size(TABLET)
    check(page, problems, "video-done-tablet", shots, axe=False)
    page.set_viewport_size(PHONE_LANDSCAPE)
    check(page, problems, "video-done-phone-landscape", shots)
    page.set_viewport_size(PHONE)

    def tap(x: float, y: float) -> None:
        box = player.bounding_box()
        player.tap(position={"x": x / SIZE[0] * box["width"], "y": y / SIZE[1] * box["height"]},
                   force=True)

    def show_frame(index: int) -> None:
        player.evaluate(f"v => {{ v.currentTime = {index / 10 + 0.01}; }}")
        page.wait_for_selector(f"[data-video-result][data-frame='{index}']")

    page.locator('[data-activity="hear"]').click()
    assert player.evaluate("v => v.paused && !v.controls")
    show_frame(5)
    tap(*((100 - 15 + 220 - 15) / 2, 130))  # the dog, where it is on frame 5
    page.wait_for_function("() => window.__spoken.length > 0")
    assert spoken(page)[-1] == "a brown dog"
    assert page.locator('[data-slot="say-word"]').inner_text() == "Dog"
    assert "2 of 2 things in the picture" in page.locator('[data-slot="frame-note"]').inner_text()
    check(page, problems, "video-tap-and-hear-phone", shots)
    show_frame(17)  # the dog has left: where it was, there is nothing to hear
    tap(150, 130)
    said = page.locator('[data-slot="say-word"]').inner_text()
    assert said == "Nothing here. Tap right on a thing!"
    assert "1 of 2 things" in page.locator('[data-slot="frame-note"]').inner_text()

    page.locator('[data-activity="game"]').click()  # on frame 17: only the ball to find
    page.wait_for_selector("[data-video-result][data-game=playing]")
    assert page.locator('[data-slot="game-total"]').inner_text() in ("1", "2")  # ball, red
    target = page.locator("[data-video-result]").get_attribute("data-target")
    assert target in ("ball", "red")
    page.wait_for_timeout(800)  # the page scrolls the question into view (smoothly)
    tap(275, 175)
    page.wait_for_function("() => window.__spoken.some(u => u.text.startsWith('Yes!'))")
    check(page, problems, "video-find-it-phone", shots)
    page.locator('[data-activity="watch"]').click()
    assert player.evaluate("v => v.controls")
    assert page.errors == [] and problems == []


def test_a_clip_this_browser_cannot_show_is_still_sent(app, web_server, new_page, tmp_path,
                                                      screenshot_dir):
    """HEVC (an iPhone's clips) plays on iOS but not in this Chromium: the page says so, offers
    Find everything and Find by name (no taps without a picture), and the video is sent with
    the things found on its first frame."""
    hevc = make_clip(tmp_path / "iphone.mp4", codec="libx265")
    shots = screenshot_dir / "video"
    shots.mkdir(exist_ok=True)
    base = web_server
    page = new_page(PHONE)
    sign_up(page, base, "parent@example.com")
    page.set_input_files("#video-library", str(hevc))
    caption = page.locator("[data-preview-caption]")
    page.wait_for_function("() => document.querySelector('[data-preview-caption]')"
                           ".textContent.includes('cannot show')")
    assert "iphone.mp4" in caption.inner_text()
    assert page.locator("[data-frame-picker]").is_hidden()
    assert page.locator("[data-points-choice]").is_hidden()
    assert page.locator("input[name=mode][value=everything]").is_checked()
    problems = []
    check(page, problems, "upload-hevc-phone", shots)
    page.locator("[data-upload-form] button[type=submit]").click()
    page.wait_for_url(re.compile(r".*/videos/\d+$"), timeout=60_000)
    video_id = int(page.url.rsplit("/", 1)[1])
    video = page.request.get(f"{base}/api/v1/videos/{video_id}").json()
    assert (video["codec"], video["mode"], video["status"]) == ("hevc", "everything", "queued")
    with app.app_context():
        from app.db import Job
        from app.extensions import db

        params = json.loads(db.session.get(Job, video["job_id"]).params)
    assert params["frame"] == 0 and params["points"] == []
    assert page.errors == [] and problems == []


def test_a_phone_held_upright_is_tapped_in_the_picture_as_shown(app, web_server, new_page,
                                                               tmp_path):
    """A clip recorded with a rotation (a phone held upright: landscape pixels, turned for
    display) is shown upright in the page, and a tap near its bottom reaches the job in the
    same upright pixels the worker uses."""
    upright = make_clip(tmp_path / "upright.mp4", size=(320, 240), rotation=90)
    base = web_server
    page = new_page(PHONE)
    sign_up(page, base, "parent@example.com")
    page.set_input_files("#video-library", str(upright))
    page.wait_for_selector("[data-frame-picker].is-ready")
    assert page.locator("[data-preview-video]").evaluate(
        "v => [v.videoWidth, v.videoHeight]") == [240, 320]
    layer = page.locator("[data-tap-layer]")
    box = layer.bounding_box()
    assert box["height"] > box["width"]  # shown upright
    layer.tap(position={"x": box["width"] * 0.5, "y": box["height"] * 0.9})
    page.locator("[data-upload-form] button[type=submit]").click()
    page.wait_for_url(re.compile(r".*/videos/\d+$"), timeout=60_000)
    video = page.request.get(f"{base}/api/v1/videos/{page.url.rsplit('/', 1)[1]}").json()
    assert (video["width"], video["height"]) == (240, 320)
    with app.app_context():
        from app.db import Job
        from app.extensions import db

        [[x, y]] = json.loads(db.session.get(Job, video["job_id"]).params)["points"]
    assert abs(x - 120) < 3 and abs(y - 288) < 3
    assert page.errors == []
