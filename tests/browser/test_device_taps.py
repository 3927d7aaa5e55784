"""Cut out with taps decoded on the device (onnxruntime-web in real Chromium, phone and tablet
size): the mask appears without a job, more taps add or take away, Undo, the worker names the
cut-out; the browser's masks equal PyTorch's; the embedding is its owner's only; and without
WebAssembly the page sends taps to the worker."""

from __future__ import annotations

import base64
import statistics
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.storage import storage
from app.worker.decoder import publish_decoder
from tests.browser.conftest import PHONE, TABLET, serious_violations, sign_up, spoken, tap_photo
from tests.conftest import PHOTOS
from tests.models.segment.test_onnx_decoder import iou, torch_work_mask

VENDOR = Path(__file__).resolve().parents[2] / "static" / "vendor" / "ort" / "ort.wasm.min.mjs"
pytestmark = pytest.mark.skipif(not VENDOR.is_file(), reason="onnxruntime-web is not vendored "
                                "(make install copies it from npm)")  # fmt: skip

DECODE_IN_PAGE = """async ([points]) => {
  const { openDecoder } = await import('/static/js/decoder.js');
  const section = document.querySelector('[data-result]');
  const img = section.querySelector('.result-img');
  const decoder = await openDecoder(section, Number(img.getAttribute('height')),
                                    Number(img.getAttribute('width')));
  if (!decoder) return null;
  const out = [];
  for (const taps of points) {
    const { mask } = await decoder.decode(taps);
    const bits = mask.bits;
    let text = '';
    for (let i = 0; i < bits.length; i += 8192)
      text += String.fromCharCode(...bits.subarray(i, i + 8192));
    // The mask drawn at the work size: its opaque pixels, against the mask's own.
    const drawn = mask.render(mask.workW, mask.workH).getContext('2d')
      .getImageData(0, 0, mask.workW, mask.workH).data;
    let differ = 0;
    for (let i = 0; i < bits.length; i += 1) differ += (drawn[4 * i + 3] > 127) !== (bits[i] === 1);
    const fresh = new mask.constructor(mask.logits, mask.rows, mask.cols, mask.workH, mask.workW,
                                       mask.h, mask.w);
    out.push({ h: mask.workH, w: mask.workW, bits: btoa(text), area: mask.area, box: mask.box(),
               empty: fresh.empty, drawnDiffer: differ });
  }
  return out;
}"""


@pytest.fixture
def segmenter_service(app):
    """MobileSAM from the test checkpoint, its decoder published as a worker does at boot."""
    from models.service import InferenceService

    service = InferenceService(app.config["INFERENCE"])
    service.load(("everything",))
    with app.app_context():
        assert publish_decoder(storage(), service) is not None
    return service


def finished_photo(page, base: str, email: str, photo: str = "dog.jpg") -> None:
    """Sign up, upload ``photo`` to find "dog" and open its page once it is done."""
    sign_up(page, base, email)
    page.set_input_files("#image-library", str(PHOTOS / photo))
    page.locator("label[for=mode-1]").click()  # Find by name
    page.fill("input[name=prompt]", "dog")
    page.locator("form [type=submit]").last.click()
    page.locator("[data-result] [data-slot=page-link]").wait_for(timeout=120_000)
    page.locator("[data-result] [data-slot=page-link]").click()
    page.locator("[data-result][data-ready='1']").wait_for()


def choose_cut_out(page) -> None:
    page.locator('[data-activity="cut"]').click()
    page.wait_for_function("() => document.querySelector('[data-result]').dataset.decoder",
                           timeout=60_000)  # fmt: skip


def test_the_browser_masks_equal_pytorch_masks(app, live_server, segmenter_service, new_page):
    page = new_page(TABLET)
    finished_photo(page, live_server, "parity@example.com")
    stored = page.locator("[data-result] .result-img").get_attribute("data-original-src")
    image = Image.open(PHOTOS / "dog.jpg")
    w, h = image.size
    taps = [[(0.5, 0.5, 1)], [(0.3, 0.6, 1)], [(0.5, 0.5, 1), (0.6, 0.4, 1)],
            [(0.5, 0.5, 1), (0.55, 0.5, 1), (0.2, 0.2, 0)]]  # fmt: skip
    points = [[{"x": fx * w, "y": fy * h, "label": label} for fx, fy, label in t] for t in taps]
    got = page.evaluate(DECODE_IN_PAGE, [points])
    assert got is not None, "the page could not open the on-device decoder"
    import io

    photo = Image.open(io.BytesIO(page.request.get(live_server + stored).body())).convert("RGB")
    segmenter = segmenter_service.segmenter
    embedding = segmenter.embed(photo)
    for tap, out in zip(points, got, strict=True):
        bits = np.frombuffer(base64.b64decode(out["bits"]), np.uint8).reshape(out["h"], out["w"])
        expected = torch_work_mask(segmenter, embedding, [(p["x"], p["y"]) for p in tap],
                                   [p["label"] for p in tap])  # fmt: skip
        assert bits.shape == expected.shape and expected.any()
        assert iou(bits.astype(bool), expected) >= 0.98
        # Its area and box in photo pixels, and its drawing (canvas pixel centres computed in
        # another order: a pixel may flip where a logit is within rounding of 0).
        ys, xs = np.nonzero(bits)
        assert out["area"] == round(bits.sum() * (h / out["h"]) * (w / out["w"]))
        assert out["box"] == pytest.approx([xs.min() * w / out["w"], ys.min() * h / out["h"],
                                            min(w, (xs.max() + 1) * w / out["w"]),
                                            min(h, (ys.max() + 1) * h / out["h"])])
        assert out["drawnDiffer"] <= bits.size * 1e-4
        assert out["empty"] is False


@pytest.mark.parametrize(("size", "name"), [(PHONE, "phone"), (TABLET, "tablet")])
def test_a_tap_is_decoded_on_the_device_refined_and_named(
    app, live_server, segmenter_service, new_page, screenshot_dir, size, name
):
    page = new_page(size)
    finished_photo(page, live_server, f"device-{name}@example.com")
    section = page.locator("[data-result]")
    choose_cut_out(page)
    assert section.get_attribute("data-decoder") == "device"
    # Cross-origin isolated (WebAssembly threads allowed), and the page's images still load.
    assert page.evaluate("self.crossOriginIsolated")
    assert page.evaluate("[...document.querySelectorAll('[data-result] img.result-img')]"
                         ".every(i => i.complete && i.naturalWidth > 0)")
    jobs_before = page.evaluate("performance.getEntriesByType('resource')"
                                ".filter(e => e.name.includes('/point')).length")
    w, h = (float(v) for v in section.locator(".result-img").evaluate(
        "i => [i.getAttribute('width'), i.getAttribute('height')]"))
    tap_photo(page, w * 0.5, h * 0.5)
    page.wait_for_function(
        "() => document.querySelector('[data-result]').dataset.cutState === 'device'")
    assert section.get_attribute("data-decoded-by") == "device"
    assert page.evaluate("performance.getEntriesByType('resource')"
                         ".filter(e => e.name.includes('/point')).length") == jobs_before
    bar = page.locator("[data-refine-bar]")
    assert bar.is_visible()
    assert float(section.get_attribute("data-tap-ms")) > 0
    area = page.evaluate("() => document.querySelector('[data-result] .spot-layer').hidden")
    assert area is False  # the mask is lit

    # Take away: a negative point, then Undo brings the first mask back.
    def lit() -> str:
        return page.locator("[data-result] .spot-layer").evaluate("c => c.toDataURL()")

    one_tap = lit()
    bar.locator('[data-refine="remove"]').click()
    assert bar.locator('[data-refine="remove"]').get_attribute("aria-pressed") == "true"
    tap_photo(page, w * 0.52, h * 0.45)
    page.wait_for_function("() => document.querySelector('[data-result]').dataset.taps === '2'")
    refined = lit()
    bar.locator("[data-refine-undo]").click()
    page.wait_for_function("() => document.querySelector('[data-result]').dataset.taps === '1'")
    assert lit() == one_tap and refined != one_tap
    page.screenshot(path=str(screenshot_dir / f"device-cutout-{name}.png"))
    assert serious_violations(page) == []

    # Cut it out: the device's cut-out in the sheet, its name from the worker, said aloud.
    bar.locator("[data-refine-done]").click()
    sheet = page.locator("[data-cutout-dialog]")
    sheet.wait_for(state="visible", timeout=60_000)
    assert sheet.locator("[data-slot=cutout-img]").get_attribute("src").startswith("data:image/png")
    sheet.locator("[data-ask]").click()
    assert spoken(page), "the name (or 'not sure') was said"
    assert serious_violations(page) == []
    assert page.errors == []


def test_a_mask_without_pixels_is_empty(app, live_server, new_page):
    """A LogitMask is empty when no upsampled logit under the photo is > 0, even when a
    positive logit lies in the padding beyond it: nothing is lit and "Cut it out!" waits."""
    page = new_page(PHONE)
    page.goto(live_server + "/login")
    got = page.evaluate("""async () => {
      const { LogitMask } = await import('/static/js/decoder.js');
      const make = (cells) => {
        const logits = new Float32Array(64).fill(-1);
        for (const i of cells) logits[i] = 5;
        return new LogitMask(logits, 8, 8, 20, 24, 40, 48);  // 20 x 24 work pixels read 6 rows
      };
      return [[], [63], [9]].map(make)
        .map((m) => ({ empty: m.empty, area: m.area, box: m.box() }));
    }""")
    assert got[0] == {"empty": True, "area": 0, "box": None}
    assert got[1] == {"empty": True, "area": 0, "box": None}  # low-res cell (7, 7): padding
    assert got[2]["empty"] is False and got[2]["area"] > 0 and got[2]["box"] is not None


def test_another_account_gets_no_embedding(app, live_server, segmenter_service, new_page):
    page = new_page(TABLET)
    finished_photo(page, live_server, "owner@example.com")
    url = page.locator("[data-result]").get_attribute("data-embedding-url")
    own = page.request.get(live_server + url)
    assert own.status == 200 and len(own.body()) == 2 * 256 * 64 * 64
    other = new_page(TABLET)
    sign_up(other, live_server, "stranger@example.com")
    assert other.request.get(live_server + url).status == 404
    decoder = other.request.get(live_server + "/api/v1/decoder").json()
    assert other.request.get(live_server + decoder["url"]).status == 200  # the model is not private


def test_without_webassembly_the_worker_cuts_it_out(app, live_server, segmenter_service,
                                                     new_page):  # fmt: skip
    page = new_page(PHONE)
    page.context.add_init_script("delete window.WebAssembly;")
    finished_photo(page, live_server, "nowasm@example.com")
    choose_cut_out(page)
    section = page.locator("[data-result]")
    assert section.get_attribute("data-decoder") == "server"
    w, h = (float(v) for v in section.locator(".result-img").evaluate(
        "i => [i.getAttribute('width'), i.getAttribute('height')]"))
    tap_photo(page, w * 0.5, h * 0.5)
    page.locator("[data-cutout-dialog]").wait_for(state="visible", timeout=60_000)
    assert section.get_attribute("data-decoded-by") is None
    assert page.errors == []


def test_tap_time_on_a_slow_phone(app, live_server, segmenter_service, new_page, capsys):
    """Not a timed test: prints the time from a tap to its mask drawn on the photo (and the
    decoder's share of it) in Chromium at phone size, unthrottled and with the CPU throttled
    4x (DevTools' "mid-tier mobile" setting), for docs/speed.md."""
    page = new_page(PHONE)
    finished_photo(page, live_server, "slow@example.com")
    choose_cut_out(page)
    cdp = page.context.new_cdp_session(page)
    section = page.locator("[data-result]")
    w, h = (float(v) for v in section.locator(".result-img").evaluate(
        "i => [i.getAttribute('width'), i.getAttribute('height')]"))
    medians = {}
    for rate in (1, 4):
        cdp.send("Emulation.setCPUThrottlingRate", {"rate": rate})
        times, decodes = [], []
        for k in range(6):
            tap_photo(page, w * (0.3 + 0.08 * k), h * 0.5)
            page.wait_for_function("() => document.querySelector('[data-result]').dataset.taps "
                                   "=== '1'")  # fmt: skip
            times.append(float(section.get_attribute("data-tap-ms")))
            decodes.append(float(section.get_attribute("data-decode-ms")))
            page.locator("[data-refine-undo]").click()
            page.wait_for_function("() => !document.querySelector('[data-result]').dataset.taps")
        assert all(0 < d <= t for d, t in zip(decodes, times, strict=True))
        medians[rate] = (statistics.median(times[1:]), times, statistics.median(decodes[1:]))
    cdp.send("Emulation.setCPUThrottlingRate", {"rate": 1})
    # DevTools' throttling slows the page's main thread only: with more than one WebAssembly
    # thread the 4x figure would flatter, so the thread count is printed with it.
    threads = page.evaluate("import('/static/js/decoder.js').then(m => m.decoderThreads())")
    with capsys.disabled():
        for rate, (median, times, decode) in medians.items():
            print(f"\non-device tap to mask drawn, phone size, CPU throttling {rate}x, "
                  f"{threads} WebAssembly thread(s): median {median:.0f} ms over taps 2-6 "
                  f"(decoding {decode:.0f} ms; all: {[round(t) for t in times]})")
