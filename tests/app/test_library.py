"""The photo's files as the library serves them: the overlay is a JPEG, and photos analysed
while it was a PNG keep showing theirs, at the new URL and the old one."""

from __future__ import annotations

import io

from PIL import Image

from app.db import Job, Photo
from app.extensions import db
from app.queue.database import DatabaseJobSource
from models.render.overlay import encode_jpeg, encode_png, render_overlay
from models.result import AnalysisResult
from tests.conftest import photo_bytes
from tests.results import finish_next_job, rect_object


def finished_photo(app, client, auth) -> tuple[dict, str]:
    """Upload dog.jpg, finish its analysis with one rectangle (no model run); returns the
    API's photo and its storage prefix."""
    form = {"mode": "everything", "image": (io.BytesIO(photo_bytes("dog.jpg")), "dog.jpg")}
    response = client.post("/api/v1/photos", data=form, headers=auth.api_headers())
    photo_id = response.get_json()["photo_id"]
    finish_next_job(app, lambda size: [rect_object("object 1", (10, 10, 190, 190), size)])
    with app.app_context():
        prefix = db.session.get(Photo, photo_id).storage_prefix
    return client.get(f"/api/v1/photos/{photo_id}").get_json(), prefix


def test_a_finished_analysis_stores_and_serves_its_overlay_as_jpeg(app, client, auth):
    auth.register()
    photo, prefix = finished_photo(app, client, auth)
    store = app.extensions["photo_storage"]
    assert store.exists(prefix + "overlay.jpg") and not store.exists(prefix + "overlay.png")
    assert photo["overlay_url"] == f"/photos/{photo['id']}/overlay.jpg"
    answer = client.get(photo["overlay_url"])
    assert answer.status_code == 200 and answer.mimetype == "image/jpeg"
    assert answer.data.startswith(b"\xff\xd8\xff")
    assert answer.data == store.get(prefix + "overlay.jpg")
    overlay = Image.open(io.BytesIO(answer.data))
    assert overlay.format == "JPEG" and overlay.size == (photo["width"], photo["height"])
    saved = client.get(photo["overlay_url"] + "?download=1")
    assert f"filename=photo-{photo['id']}-overlay.jpg" in saved.headers["Content-Disposition"]
    page = client.get(f"/photos/{photo['id']}").get_data(as_text=True)
    assert f'src="/photos/{photo["id"]}/overlay.jpg"' in page
    assert "Coloured picture <small>(JPEG)</small>" in page


def test_a_photo_with_only_the_old_png_overlay_is_still_shown(app, client, auth, make_client):
    """A photo analysed while overlays were PNGs has overlay.png and no overlay.jpg: both
    overlay URLs serve the PNG as image/png (downloaded under its own name), to its owner
    only; once the photo has a JPEG overlay, that one wins at both URLs."""
    auth.register()
    photo, prefix = finished_photo(app, client, auth)
    store = app.extensions["photo_storage"]
    store.local_path(prefix + "overlay.jpg").unlink()
    size = (photo["width"], photo["height"])
    old = encode_png(render_overlay(Image.new("RGB", size, (40, 90, 160)), []))
    store.put(prefix + "overlay.png", old)
    page = client.get(f"/photos/{photo['id']}").get_data(as_text=True)
    assert f'src="{photo["overlay_url"]}"' in page  # the page links the overlay.jpg URL
    for url in (photo["overlay_url"], f"/photos/{photo['id']}/overlay.png"):
        answer = client.get(url)
        assert answer.status_code == 200 and answer.mimetype == "image/png", url
        assert answer.data == old
        saved = client.get(url + "?download=1")
        assert f"filename=photo-{photo['id']}-overlay.png" in saved.headers["Content-Disposition"]
    other, _ = make_client("other@example.com")
    assert other.get(photo["overlay_url"]).status_code == 404

    # Analysed again: the new JPEG is served at both URLs, not the stale PNG beside it.
    with app.app_context():
        job = Job(photo=db.session.get(Photo, photo["id"]))
        db.session.add(job)
        db.session.commit()
        job_id = job.id
    source = DatabaseJobSource(app)
    request = source.claim()
    assert request is not None and request.job_id == job_id
    new = encode_jpeg(render_overlay(request.image, []))
    source.complete(job_id, AnalysisResult(
        width=size[0], height=size[1], mode="everything", prompt=None, objects=[],
        weights={"mobile_sam": "unverified"}), new)  # fmt: skip
    for url in (photo["overlay_url"], f"/photos/{photo['id']}/overlay.png"):
        answer = client.get(url)
        assert answer.status_code == 200 and answer.mimetype == "image/jpeg", url
        assert answer.data == new


def test_a_photo_without_an_overlay_answers_404(app, client, auth):
    auth.register()
    photo, prefix = finished_photo(app, client, auth)
    app.extensions["photo_storage"].local_path(prefix + "overlay.jpg").unlink()
    assert client.get(photo["overlay_url"]).status_code == 404
    assert client.get(f"/photos/{photo['id']}/overlay.png").status_code == 404
