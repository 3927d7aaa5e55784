"""A child with a phone or a tablet, end to end on the real models (random test weights): sign
up, photograph (upload), watch the progress, see the labelled result, tap a thing to hear its
name, play Find it! to the end, and (phone) cut a thing out and name it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as coco_mask

from tests.browser.conftest import (
    PHONE,
    TABLET,
    serious_violations,
    sign_up,
    small_touch_targets,
    spoken,
)
from tests.conftest import PHOTOS

UNSURE = "I'm not sure what this is. Do you know?"


def masks_of(page, json_url: str) -> tuple[list[dict], np.ndarray]:
    """objects.json's objects with their masks decoded (``pixels``: (H, W) bool), and the
    clearance map: for each photo pixel, the distance (pixels) to the nearest edge of any mask
    or of the photo. A finger's touch is rounded to whole screen pixels (several photo pixels),
    so the tests tap where the clearance is large: every mask there is certainly in or out."""
    objects = page.request.get(json_url).json()["objects"]
    clearance = None
    for obj in objects:
        mask = coco_mask.decode({"size": obj["mask"]["size"],
                                 "counts": obj["mask"]["counts"].encode()}).astype(bool)
        obj["pixels"] = mask
        # distance to this mask's edge from inside plus from outside (one of them is 0); the
        # padding makes the photo's own edge count as an edge too
        edge = sum(cv2.distanceTransform(np.pad(side, 1).astype(np.uint8), cv2.DIST_L2,
                                         5)[1:-1, 1:-1] for side in (mask, ~mask))
        clearance = edge if clearance is None else np.minimum(clearance, edge)
    return objects, clearance


def tap_safely(page, region: np.ndarray, clearance: np.ndarray) -> tuple[float, float]:
    """Tap the photo inside ``region`` ((H, W) bool) where no mask edge is near, and return the
    photo pixel the page computes for that tap. Touches land on whole screen pixels, so the
    candidates are whole client pixels mapped to the photo exactly as static/js/stage.js does."""
    img = page.locator("[data-result] .result-img")
    img.evaluate("i => i.scrollIntoView({block: 'center'})")
    box = img.bounding_box()
    height, width = region.shape
    xs = np.arange(np.ceil(box["x"]), np.floor(box["x"] + box["width"]))
    ys = np.arange(np.ceil(box["y"]), np.floor(box["y"] + box["height"]))
    px = (xs - box["x"]) / box["width"] * width
    py = (ys - box["y"]) / box["height"] * height
    grid = np.ix_(py.astype(int), px.astype(int))
    score = np.where(region[grid], clearance[grid], -1)
    j, i = np.unravel_index(int(np.argmax(score)), score.shape)
    assert score[j, i] > 0, "nowhere to tap inside the region"
    page.touchscreen.tap(float(xs[i]), float(ys[j]))
    return float(px[i]), float(py[j])


def smallest_at(objects: list[dict], x: float, y: float) -> dict:
    """The object a tap at (x, y) picks: the smallest mask containing it (static/js/learn.js)."""
    inside = [o for o in objects if o["pixels"][int(y), int(x)]]
    return min(inside, key=lambda o: o["pixels"].sum())


@pytest.mark.parametrize(("size", "name"), [(PHONE, "phone"), (TABLET, "tablet")])
def test_a_child_hears_names_and_finds_them(live_server, new_page, screenshot_dir, size, name):
    """Upload, hear names, play Find it! to the end and (phone) cut out and name a thing."""
    page = new_page(size)
    sign_up(page, live_server, f"{name}@example.com")

    photo = PHOTOS / "car-and-bicycle.jpg"
    page.set_input_files("#image-library", str(photo))
    page.locator("label[for=mode-1]").click()  # Find by name
    page.fill("input[name=prompt]", "car, bicycle")
    page.evaluate("window.scrollTo(0, 0)")
    page.wait_for_timeout(400)  # let the prompt field's reveal transition finish
    page.screenshot(path=str(screenshot_dir / f"upload-{name}.png"))
    page.locator("[data-upload-form] button[type=submit]").click()

    page.wait_for_selector("[data-progress]", state="visible")
    items = page.locator("[data-result] [data-slot=objects] li")
    items.first.wait_for(timeout=120_000)
    assert page.url == f"{live_server}/"  # shown in place, without a reload
    labels = {text.split()[0].lower() for text in items.all_inner_texts()}
    assert labels <= {"car", "bicycle"} and labels
    overlay = page.locator("[data-result] img[data-slot=img]")
    natural = overlay.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    assert tuple(natural) == Image.open(photo).size
    # random test weights are never shown as the product's work
    notice = page.locator("[data-unverified-notice]").first
    assert notice.is_visible() and "unverified test weights" in notice.inner_text()
    page.wait_for_selector("[data-result][data-masks=ready]")
    page.locator("[data-result]").scroll_into_view_if_needed()
    notice.scroll_into_view_if_needed()
    page.screenshot(path=str(screenshot_dir / f"result-{name}.png"))
    assert serious_violations(page) == [] and small_touch_targets(page) == []

    # Tap & hear: a name in the list, then a thing on the photo.
    first = page.locator(".object-btn").first
    first.click()
    word = page.locator("[data-say-card] [data-slot=say-word]")
    assert word.inner_text().lower() == first.get_attribute("data-label")
    assert spoken(page)[-1] == first.get_attribute("data-description")  # "a grey car"
    objects, clearance = masks_of(page, live_server + page.locator("[data-result]").get_attribute(
        "data-objects-url"))
    tappable = [o for o in objects if o["pixels"].any()]
    x, y = tap_safely(page, np.any([o["pixels"] for o in tappable], axis=0), clearance)
    expected = smallest_at(tappable, x, y)
    assert word.inner_text() == expected["label"].capitalize()
    assert spoken(page)[-1] == (expected["description"] if expected["named"] else UNSURE)
    assert page.locator("[data-result] .spot-layer").is_visible()  # the thing lights up
    page.screenshot(path=str(screenshot_dir / f"tapped-{name}.png"))

    # Find it!: each named thing once, then up to two colours, found by tapping inside a mask
    # of that thing or colour; then the score.
    page.locator('[data-activity="game"]').click()
    page.wait_for_selector("[data-result][data-game=playing]")
    section = page.locator("[data-result]")
    targets = {o["label"] for o in tappable if o["named"]}
    colors = {o["color_name"] for o in tappable if o["color_name"]}
    total = int(page.locator("[data-slot=game-total]").inner_text())
    assert total == len(targets) + min(2, len(colors))
    asked = set()
    page.wait_for_timeout(900)  # the game scrolls its question into view (smoothly)
    notice.evaluate("n => n.scrollIntoView({block: 'start'})")  # test weights: say so
    page.wait_for_timeout(200)
    page.screenshot(path=str(screenshot_dir / f"game-{name}.png"))
    for _ in range(total):
        target = section.get_attribute("data-target")
        asked.add(target)
        if section.get_attribute("data-target-kind") == "color":
            assert spoken(page)[-1] == f"Can you find something {target}?"
            answers = [o["pixels"] for o in tappable if o["color_name"] == target]
        else:
            assert spoken(page)[-1] == f"Can you find the {target}?"
            answers = [o["pixels"] for o in tappable if o["named"] and o["label"] == target]
        tap_safely(page, np.any(answers, axis=0), clearance)
        assert page.locator("[data-slot=game-feedback]").inner_text().startswith("Yes! That's")
        page.wait_for_selector(f"[data-result]:not([data-target='{target}'])", timeout=5000)
    over = page.locator("[data-game-over]")
    over.wait_for(state="visible")
    assert over.locator("[data-slot=game-over-title]").inner_text() == (
        f"You found {total} of {total}!")
    assert page.evaluate("window.__tones") >= 4 * total  # a 4-note sound per find
    over.scroll_into_view_if_needed()
    page.screenshot(path=str(screenshot_dir / f"game-over-{name}.png"))
    assert serious_violations(page) == []

    if size is PHONE:
        # Tap to cut out: the worker segments the tapped thing on the cached embedding.
        page.locator('[data-activity="cut"]').click()
        tap_safely(page, np.ones_like(clearance, dtype=bool), clearance)
        sheet = page.locator("[data-cutout-dialog]")
        sheet.wait_for(state="visible", timeout=60_000)
        assert sheet.locator("[data-slot=cutout-img]").evaluate("i => i.naturalWidth") > 0
        sheet.locator("[data-ask]").click()
        said = spoken(page)[-1]
        shown = sheet.locator("[data-slot=cutout-word]").inner_text()
        assert said == UNSURE if shown == "Something?" else said == shown.lower()
        page.screenshot(path=str(screenshot_dir / f"cutout-{name}.png"))
        assert serious_violations(page) == []
        if sheet.locator("[data-name-form]").is_hidden():
            sheet.locator("[data-name-open]").click()
        sheet.locator("#name-word").fill("wheel")
        sheet.locator("[data-name-form] button[type=submit]").click()
        sheet.locator("[data-slot=saved-note]").wait_for()
        assert spoken(page)[-1] == "wheel"
        sheet.locator(".sheet-close button").click()
        page.locator("[data-result] [data-slot=page-link]").click()
        chips = page.locator("[data-words] .word-chip")
        chips.first.wait_for()
        assert set(chips.all_inner_texts()) == asked | {"wheel"}  # the words found

    page.goto(f"{live_server}/library")
    assert page.locator("a[href^='/photos/']").count() >= 1
    page.screenshot(path=str(screenshot_dir / f"library-{name}.png"))
    assert page.errors == []
