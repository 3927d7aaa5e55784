"""Every page at phone and tablet size, portrait and landscape: no serious or critical
accessibility violations (axe-core), touch targets of at least 48 px, no script errors, and a
screenshot of each in test-artifacts/pages/. Photos here are finished with synthetic masks
(rectangles, tests/results.py) so the pages do not wait for a model."""

from __future__ import annotations

from app.db import User
from app.extensions import db
from tests.browser.conftest import (
    PHONE,
    PHONE_LANDSCAPE,
    TABLET,
    TABLET_LANDSCAPE,
    serious_violations,
    sign_up,
    small_touch_targets,
    spoken,
    tap_photo,
)
from tests.conftest import PHOTOS
from tests.results import finish_next_job, rect_object

VIEWPORTS = {"phone": PHONE, "phone-landscape": PHONE_LANDSCAPE, "tablet": TABLET,
             "tablet-landscape": TABLET_LANDSCAPE}
#: Where each check runs: axe on a phone and a sideways tablet, touch targets on both portraits.
AXE_AT = ("phone", "tablet-landscape")
TARGETS_AT = ("phone", "tablet")

# dog.jpg (2048x1365): the dog, the grass, trees it cannot name, a tree trunk ("object 4").
DOG, GRASS = (830, 560, 1760, 960), (0, 1050, 2048, 1365)
TREES, TRUNK = (1350, 0, 2048, 480), (280, 200, 400, 600)


def dog_objects(size):
    """What's in my photo? with two named things and two it is not sure about."""
    return [rect_object("grass", GRASS, size, 0), rect_object("dog", DOG, size, 1),
            rect_object("something?", TREES, size, 2, named=False),
            rect_object("object 4", TRUNK, size, 3)]


def upload(page, base: str, name: str = "dog.jpg", mode: str = "everything") -> int:
    """Send a photo through the JSON API with the page's session and CSRF token."""
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    response = page.request.post(f"{base}/api/v1/photos", headers={"X-CSRFToken": token},
                                 multipart={"mode": mode, "image": {
                                     "name": name, "mimeType": "image/jpeg",
                                     "buffer": (PHOTOS / name).read_bytes()}})
    assert response.status == 202, response.text()
    return response.json()["photo_id"]


def center(box):
    """The centre (x, y) of a box xyxy."""
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def tour(page, shots, name: str, problems: list[str], *, prepare=None) -> None:
    """Screenshot the current page at every viewport, with axe and touch-target checks."""
    for size_name, size in VIEWPORTS.items():
        page.set_viewport_size(size)
        if prepare:
            prepare()
        page.wait_for_timeout(350)  # transitions and pop-in animations
        if size_name in AXE_AT:
            problems += [f"{name} @ {size_name}: {v}" for v in serious_violations(page)]
        if size_name in TARGETS_AT:
            problems += [f"{name} @ {size_name}: small {t}" for t in small_touch_targets(page)]
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(shots / f"{name}-{size_name}.png"), full_page=True)


def test_every_page_is_accessible_and_designed_for_touch(app, web_server, new_page,
                                                          screenshot_dir):
    """Every page, four viewports: axe clean, 48 px targets, no script errors, screenshots."""
    base, problems = web_server, []
    shots = screenshot_dir / "pages"
    shots.mkdir(exist_ok=True)

    visitor = new_page(PHONE)
    for name, path in {"landing": "/", "register": "/register", "login": "/login",
                       "not-found": "/no-such-page"}.items():
        visitor.goto(base + path)
        tour(visitor, shots, name, problems)

    page = new_page(PHONE)
    sign_up(page, base, "tour@example.com")
    tour(page, shots, "upload", problems)
    photo_id = upload(page, base)
    finish_next_job(app, dog_objects)
    upload(page, base, "bears.jpg")  # stays waiting: no worker here
    page.request.put(f"{base}/api/v1/photos/{photo_id}/favourite", data={"favourite": True},
                     headers={"X-CSRFToken": page.locator('meta[name="csrf-token"]')
                              .get_attribute("content")})
    page.goto(f"{base}/library")
    tour(page, shots, "library", problems)

    page.goto(f"{base}/photos/{photo_id}")
    page.wait_for_selector("[data-result][data-masks=ready]")
    tour(page, shots, "photo", problems)
    tour(page, shots, "photo-tapped", problems,
         prepare=lambda: tap_photo(page, *center(TREES)))
    page.locator('[data-activity="game"]').click()
    page.wait_for_selector("[data-result][data-game=playing]")
    tour(page, shots, "photo-game", problems)
    page.locator('[data-activity="hear"]').click()
    page.goto(f"{base}/photos/{photo_id + 1}")
    tour(page, shots, "photo-waiting", problems)
    page.goto(f"{base}/settings")
    tour(page, shots, "settings", problems)
    page.goto(f"{base}/logout")
    tour(page, shots, "logout", problems)
    with app.app_context():
        db.session.execute(db.update(User).values(is_admin=True))
        db.session.commit()
    page.goto(f"{base}/admin")
    tour(page, shots, "admin", problems)

    assert problems == []
    assert visitor.errors == [] and page.errors == []


def test_something_is_never_named_and_find_it_ends_with_a_score(app, web_server, new_page,
                                                               screenshot_dir):
    """Unsure things are never named aloud; naming, Find it! to the score, favourites."""
    base = web_server
    page = new_page(PHONE)
    sign_up(page, base, "child@example.com")
    page.goto(f"{base}/settings")
    page.locator("#rate").fill("1.2")
    page.locator("form[data-settings-form] button[type=submit]").click()
    page.wait_for_url(f"{base}/settings")
    photo_id = upload(page, base)
    finish_next_job(app, dog_objects)
    page.goto(f"{base}/photos/{photo_id}")
    page.wait_for_selector("[data-result][data-masks=ready]")

    # Named things are named; the others are "Something?" and never said with confidence.
    names = page.locator(".object-btn .object-name").all_inner_texts()
    assert names == ["Grass", "Dog", "Something?", "Something?"]
    tap_photo(page, *center(TREES))
    assert page.locator("[data-say-card] [data-slot=say-word]").inner_text() == "Something?"
    assert spoken(page)[-1] == "I'm not sure what this is. Do you know?"
    tap_photo(page, *center(DOG))
    assert page.locator("[data-say-card] [data-slot=say-word]").inner_text() == "Dog"
    assert page.evaluate("window.__spoken.at(-1)") == {
        "text": "dog", "rate": 1.2, "lang": "en", "voice": None}
    page.locator(".object-btn", has_text="Grass").click()
    assert spoken(page)[-1] == "grass"

    # Naming an unknown thing adds the word to "words we learned".
    tap_photo(page, *center(TRUNK))
    page.locator("[data-name-it]").click()
    page.locator("#name-word").fill("tree")
    page.locator("[data-name-form] button[type=submit]").click()
    page.wait_for_selector("[data-slot=saved-note]:not([hidden])")
    page.screenshot(path=str(screenshot_dir / "pages" / "named-phone.png"))
    page.locator("[data-cutout-dialog] .sheet-close button").click()
    assert page.locator("[data-words] .word-chip").all_inner_texts() == ["tree"]

    # Find it!: one question per named thing; a wrong tap says gently what was tapped.
    page.locator('[data-activity="game"]').click()
    section = page.locator("[data-result]")
    page.wait_for_selector("[data-result][data-game=playing]")
    assert page.locator("[data-game-bar] [data-slot=game-total]").inner_text() == "2"
    first = section.get_attribute("data-target")
    assert spoken(page)[-1] == f"Can you find the {first}?"
    tap_photo(page, *center(TREES))
    feedback = page.locator("[data-slot=game-feedback]")
    assert feedback.inner_text() == f"That's something else. Can you find the {first}?"
    tones = page.evaluate("window.__tones")
    found = []
    for _ in range(2):
        target = section.get_attribute("data-target")
        tap_photo(page, *center(DOG if target == "dog" else GRASS))
        assert feedback.inner_text() == f"Yes! That's the {target}!"
        found.append(target)
        page.screenshot(path=str(screenshot_dir / "pages" / "game-found-phone.png"))
        page.wait_for_selector(f"[data-result]:not([data-target='{target}'])", timeout=5000)
    assert sorted(found) == ["dog", "grass"]
    assert page.evaluate("window.__tones") > tones  # the happy sound played
    over = page.locator("[data-game-over]")
    over.wait_for(state="visible")
    assert over.locator("[data-slot=game-over-title]").inner_text() == "You found 2 of 2!"
    assert over.locator(".game-star.is-lit").count() == 2
    assert spoken(page)[-1] == "Well done! You found all 2!"
    page.locator("[data-words] .word-chip").nth(2).wait_for()
    assert sorted(page.locator("[data-words] .word-chip").all_inner_texts()) == [
        "dog", "grass", "tree"]
    page.screenshot(path=str(screenshot_dir / "pages" / "game-over-phone.png"), full_page=True)

    # A grown-up marks the photo as a favourite; the library shows and filters it.
    page.locator(".fav-btn").click()
    page.wait_for_selector('.fav-btn[aria-pressed="true"]')
    page.goto(f"{base}/library")
    assert page.locator(".photo-card.is-favourite").count() == 1
    assert page.errors == []


def test_without_names_find_it_says_so_and_cut_out_is_offered(app, web_server, new_page):
    """No names: the game says there is nothing to find; nothing found: Cut out is offered."""
    base = web_server
    page = new_page(TABLET)
    sign_up(page, base, "unsure@example.com")
    photo_id = upload(page, base)
    finish_next_job(app, lambda size: [rect_object("object 1", DOG, size)])
    page.goto(f"{base}/photos/{photo_id}")
    page.locator('[data-activity="game"]').click()
    page.wait_for_selector("[data-result][data-game=none]")
    assert "nothing to find" in page.locator("[data-slot=activity-text]").inner_text()
    assert page.locator("[data-game-bar]").is_hidden()
    # Nothing found at all: the child is pointed at Cut out, which works on anything.
    photo_id = upload(page, base)
    finish_next_job(app, lambda size: [])
    page.goto(f"{base}/photos/{photo_id}")
    page.wait_for_selector("[data-result][data-masks=none]")
    assert "Choose Cut out" in page.locator("[data-slot=activity-text]").inner_text()
    assert page.errors == []


def test_words_and_favourites_work_without_javascript(app, web_server, browser):
    """Words and favourites work as plain forms without JavaScript."""
    base = web_server
    context = browser.new_context(java_script_enabled=False, viewport=PHONE)
    page = context.new_page()
    sign_up(page, base, "nojs@example.com")
    page.goto(f"{base}/")
    page.set_input_files("#image-library", str(PHOTOS / "dog.jpg"))
    page.locator("[data-upload-form] button[type=submit]").click()
    finish_next_job(app, dog_objects)
    page.reload()
    page.fill("#new-word", "corgi")
    page.locator("[data-word-add] button[type=submit]").click()
    assert page.locator("[data-words] .word-chip").all_inner_texts() == ["corgi"]
    page.locator(".fav-btn").click()
    assert page.locator(".fav-btn").get_attribute("aria-pressed") == "true"
    page.locator(".word-remove-btn").click()
    assert page.locator("[data-words] .word-chip").count() == 0
    context.close()


def test_everything_mode_shows_the_masks_while_it_finds_their_names(app, web_server, new_page,
                                                                    screenshot_dir):
    """While the job runs, the worker's preview (masks coloured in, no names yet) replaces
    the photo in the progress card; then the finished result replaces the card."""
    from app.queue.database import DatabaseJobSource
    from models.render.overlay import encode_jpeg, encode_png, render_preview
    from models.result import AnalysisResult

    base = web_server
    page = new_page(PHONE)
    sign_up(page, base, "preview@example.com")
    photo_id = upload(page, base)
    source = DatabaseJobSource(app)
    request = source.claim()
    assert request is not None
    page.goto(f"{base}/photos/{photo_id}")
    page.wait_for_selector("[data-progress]")
    size = request.image.size
    objects = [rect_object("something?", DOG, size, 0, named=False),
               rect_object("something?", GRASS, size, 1, named=False)]
    source.preview(request.job_id, encode_png(render_preview(request.image, objects)))
    page.wait_for_function(
        "() => (document.querySelector('[data-slot=progress-img]')?.src || '')"
        f".endsWith('/photos/{photo_id}/preview.png')")  # fmt: skip
    image = page.locator("[data-slot=progress-img]")
    assert "names are coming" in image.get_attribute("alt")
    page.wait_for_function("() => document.querySelector('[data-slot=progress-img]').naturalWidth")
    shots = screenshot_dir / "pages"
    shots.mkdir(exist_ok=True)
    page.screenshot(path=str(shots / "preview-phone.png"), full_page=True)
    source.complete(request.job_id, AnalysisResult(
        width=size[0], height=size[1], mode="everything", prompt=None, objects=dog_objects(size),
        weights={"mobile_sam": "unverified"}), encode_jpeg(render_preview(request.image, [])))
    page.wait_for_selector("[data-result]")
    assert page.locator("[data-progress]").count() == 0
    assert page.errors == []


def test_looking_for_something_else_shows_what_was_found(app, web_server, new_page,
                                                         screenshot_dir):
    """On a finished photo a grown-up types new words; the answer (a words job) is shown as
    an overlay with the names found, and said aloud; nothing found is said kindly."""
    import time

    from playwright.sync_api import expect

    from app.db import Job

    base = web_server
    page = new_page(PHONE)
    sign_up(page, base, "finder@example.com")
    photo_id = upload(page, base)
    finish_next_job(app, dog_objects)
    page.goto(f"{base}/photos/{photo_id}")
    card = page.locator("[data-find-more]")
    card.wait_for(state="visible")

    def answer(objects_for_size) -> None:
        deadline = time.monotonic() + 10
        while True:  # the page's POST /find has queued the job
            with app.app_context():
                if db.session.query(Job).filter_by(kind="words", status="queued").count():
                    break
            assert time.monotonic() < deadline, "no words job was queued"
            time.sleep(0.1)
        finish_next_job(app, objects_for_size, "grounded", "ball")

    page.locator("#find-words").fill("ball, dog")
    page.locator("[data-find-form] button[type=submit]").click()
    answer(lambda size: [rect_object("dog", DOG, size, 0), rect_object("ball", TRUNK, size, 1)])
    caption = card.locator("[data-slot=find-caption]")
    caption.wait_for(state="visible")
    assert caption.inner_text() == "I found 2 things: Dog, Ball."
    assert spoken(page)[-1] == "I found 2 things: Dog, Ball."
    assert card.locator("[data-slot=find-img]").evaluate("img => img.naturalWidth") > 0
    assert serious_violations(page) == [] and small_touch_targets(page) == []
    card.screenshot(path=str(screenshot_dir / "pages" / "find-more-phone.png"))

    page.locator("#find-words").fill("kite")
    page.locator("[data-find-form] button[type=submit]").click()
    answer(lambda size: [])
    expect(caption).to_have_text("I could not find kite in this photo.")
    page.locator("#find-words").fill(" , ")
    page.locator("[data-find-form] button[type=submit]").click()
    expect(card.locator("[data-slot=find-error]")).to_have_text(
        'Please type what to look for, for example "cat, ball".')
    assert page.errors == []


def test_colour_words_are_said_and_asked_for(app, web_server, new_page):
    """A tapped thing is said with its colour ("a brown dog"); Find it! also asks for colours
    ("Can you find something red?"), answered by any thing of that colour, named or not."""
    base = web_server
    page = new_page(PHONE)
    sign_up(page, base, "colours@example.com")
    photo_id = upload(page, base)
    colors = {"grass": "green", "dog": "brown", "something?": "red"}

    def objects(size):
        return [rect_object("grass", GRASS, size, 0, color_name="green"),
                rect_object("dog", DOG, size, 1, color_name="brown"),
                rect_object("something?", TREES, size, 2, named=False, color_name="red")]

    finish_next_job(app, objects)
    page.goto(f"{base}/photos/{photo_id}")
    page.wait_for_selector("[data-result][data-masks=ready]")
    tap_photo(page, *center(DOG))
    assert spoken(page)[-1] == "a brown dog"
    tap_photo(page, *center(GRASS))
    assert spoken(page)[-1] == "green grass"
    tap_photo(page, *center(TREES))
    assert spoken(page)[-1] == "I'm not sure what this is. Do you know?"

    page.locator('[data-activity="game"]').click()
    section = page.locator("[data-result]")
    page.wait_for_selector("[data-result][data-game=playing]")
    assert page.locator("[data-game-bar] [data-slot=game-total]").inner_text() == "4"
    where = {"grass": GRASS, "dog": DOG, "green": GRASS, "brown": DOG, "red": TREES}
    asked = []
    for _ in range(4):
        target, kind = section.get_attribute("data-target"), section.get_attribute(
            "data-target-kind")
        asked.append((kind, target))
        if kind == "color":
            assert spoken(page)[-1] == f"Can you find something {target}?"
        else:
            assert spoken(page)[-1] == f"Can you find the {target}?"
        tap_photo(page, *center(where[target]))
        said = spoken(page)[-1]
        if kind == "color":
            named = [label for label, c in colors.items() if c == target and label != "something?"]
            assert said == ("Yes! That's a brown dog!" if named == ["dog"] else
                            "Yes! That's green grass!" if named else
                            f"Yes! That's something {target}!")
        else:
            assert said == f"Yes! That's the {target}!"
        page.wait_for_timeout(1800)
    assert sorted(t for k, t in asked if k == "label") == ["dog", "grass"]
    assert len([t for k, t in asked if k == "color"]) == 2
    page.locator("[data-game-over]").wait_for(state="visible")
    assert page.locator("[data-slot=game-over-title]").inner_text() == "You found 4 of 4!"
    assert page.errors == []
