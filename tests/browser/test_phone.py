"""A real browser at phone size: sign up, photograph (upload), watch progress, see the result."""

from __future__ import annotations

import pytest
from PIL import Image

from tests.browser.conftest import PHONE, TABLET
from tests.conftest import PASSWORD, PHOTOS


def sign_up(page, base: str, email: str) -> None:
    page.goto(f"{base}/register")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.fill("input[name=confirm]", PASSWORD)
    page.locator("form button[type=submit], form input[type=submit]").last.click()
    page.wait_for_url(f"{base}/")


@pytest.mark.parametrize(("size", "name"), [(PHONE, "phone"), (TABLET, "tablet")])
def test_find_by_name_on_a_phone_shows_the_labelled_result(live_server, browser, screenshot_dir,
                                                          size, name):
    context = browser.new_context(viewport=size, device_scale_factor=2, has_touch=True,
                                  is_mobile=size is PHONE)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
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
    assert page.locator("[data-unverified-notice], .notice--unverified").first.is_visible()
    page.screenshot(path=str(screenshot_dir / f"result-{name}.png"), full_page=True)

    page.goto(f"{live_server}/library")
    assert page.locator("a[href^='/photos/']").count() >= 1
    page.screenshot(path=str(screenshot_dir / f"library-{name}.png"))
    assert errors == []
    context.close()
