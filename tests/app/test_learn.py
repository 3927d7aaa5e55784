"""Learning with a photo: tap to cut out (point jobs), words we learned, favourites, speech
settings; every call only on the caller's own photos and jobs, and state changes need CSRF."""

from __future__ import annotations

import io
import json

import pytest

from app.db import Job
from app.extensions import db
from app.files import ORIGINAL
from app.queue.database import DatabaseJobSource, photo_cache_key
from app.storage import storage
from models.result import AnalysisResult
from tests.conftest import csrf_token, photo_bytes
from tests.results import finish_next_job, rect_object


def finished_photo(app, client, auth, mode="everything", labels=("object 1", "object 2")):
    """Upload dog.jpg and finish its analysis with rectangle objects (no model run)."""
    form = {"mode": mode, "image": (io.BytesIO(photo_bytes("dog.jpg")), "dog.jpg")}
    if mode == "grounded":
        form["prompt"] = ", ".join(labels)
    ids = client.post("/api/v1/photos", data=form, headers=auth.api_headers()).get_json()
    photo = client.get(f"/api/v1/photos/{ids['photo_id']}").get_json()
    size = (photo["width"], photo["height"])
    finish_next_job(app, lambda size: [
        rect_object(label, (10 + 200 * i, 10, 190 + 200 * i, 190), size, i)
        for i, label in enumerate(labels)], mode, form.get("prompt"))
    return ids["photo_id"], size


def stored_original(app, photo_id: int) -> bytes:
    """The stored (normalised) original of a photo."""
    from app.db import Photo

    with app.app_context():
        return storage().get(db.session.get(Photo, photo_id).storage_prefix + ORIGINAL)


def tap(client, auth, photo_id, x=50, y=60, headers=None):
    """POST a tap at (x, y) photo pixels on the photo; returns the response."""
    return client.post(f"/api/v1/photos/{photo_id}/point", json={"x": x, "y": y},
                       headers=auth.api_headers() if headers is None else headers)


def test_a_tap_is_a_point_job_that_leaves_the_photo_alone(app, client, auth):
    """A tap queues a point job on the photo's embedding; its result and cut-out are served,
    the photo's own result stays."""
    auth.register()
    photo_id, size = finished_photo(app, client, auth)
    response = tap(client, auth, photo_id, x=50.5, y=60)
    assert response.status_code == 202
    job_id = response.get_json()["job_id"]
    assert client.get(f"/api/v1/jobs/{job_id}/result").status_code == 409  # not done yet

    source = DatabaseJobSource(app)
    request = source.claim()
    assert (request.job_id, request.kind, request.params) == (job_id, "point", {"x": 50.5, "y": 60})
    # the cached image embedding of this photo: its id and the stored picture's hash
    assert request.key == photo_cache_key(photo_id, stored_original(app, photo_id))
    assert client.get(f"/api/v1/photos/{photo_id}").get_json()["status"] == "done"
    cut = rect_object("something?", (20, 30, 120, 130), size)
    source.complete(job_id, AnalysisResult(width=size[0], height=size[1], mode="everything",
                                           prompt=None, objects=[cut],
                                           weights={"mobile_sam": "unverified"}), b"\x89PNG-cut")

    assert client.get(f"/api/v1/jobs/{job_id}").get_json()["status"] == "done"
    result = client.get(f"/api/v1/jobs/{job_id}/result").get_json()
    assert result["object"]["label"] == "something?" and result["object"]["named"] is False
    assert result["object"]["mask"]["size"] == [size[1], size[0]]
    assert (result["x"], result["y"]) == (50.5, 60)
    png = client.get(result["cutout_url"])
    assert png.status_code == 200 and png.mimetype == "image/png" and png.data == b"\x89PNG-cut"
    photo = client.get(f"/api/v1/photos/{photo_id}").get_json()
    assert photo["status"] == "done" and photo["job_id"] != job_id  # still the analysis
    assert [o["label"] for o in photo["objects"]] == ["object 1", "object 2"]


def test_a_words_overlay_is_stored_as_jpeg_and_a_cutout_as_png(app, client, auth):
    """Each re-prompt's picture is stored beside the photo's files by its kind: a "words"
    job's overlay as "<job id>.jpg" (a JPEG, as the worker encodes it), a "point" job's
    cut-out as "<job id>.png" (a PNG with alpha, served at cutout.png); deleting the photo
    deletes both."""
    from PIL import Image

    from app.db import Photo
    from models.render.overlay import encode_jpeg, encode_png, render_cutout, render_overlay

    auth.register()
    photo_id, size = finished_photo(app, client, auth)
    with app.app_context():
        photo = db.session.get(Photo, photo_id)
        prefix = photo.storage_prefix
        words = Job(photo=photo, kind="words", params=json.dumps({"prompt": "dog"}))
        db.session.add(words)
        db.session.commit()
        words_id = words.id
    point_id = tap(client, auth, photo_id).get_json()["job_id"]
    source = DatabaseJobSource(app)
    store = app.extensions["photo_storage"]
    for _ in range(2):
        request = source.claim()
        obj = rect_object("dog", (20, 30, 120, 130), size)
        picture = (encode_jpeg(render_overlay(request.image, [obj])) if request.kind == "words"
                   else encode_png(render_cutout(request.image, obj)))  # fmt: skip
        source.complete(request.job_id, AnalysisResult(
            width=size[0], height=size[1], mode="grounded", prompt="dog", objects=[obj],
            weights={"mobile_sam": "unverified"}), picture)  # fmt: skip
    overlay = store.get(prefix + f"{words_id}.jpg")
    assert overlay.startswith(b"\xff\xd8\xff") and not store.exists(prefix + f"{words_id}.png")
    assert Image.open(io.BytesIO(overlay)).format == "JPEG"
    assert store.get(prefix + f"{point_id}.png").startswith(b"\x89PNG\r\n\x1a\n")
    assert not store.exists(prefix + f"{point_id}.jpg")
    cut = client.get(f"/api/v1/jobs/{point_id}/cutout.png")
    assert cut.status_code == 200 and cut.mimetype == "image/png"
    assert Image.open(io.BytesIO(cut.data)).mode == "RGBA"
    deleted = client.delete(f"/api/v1/photos/{photo_id}", headers=auth.api_headers())
    assert deleted.status_code == 204
    assert not store.exists(prefix + f"{words_id}.jpg")
    assert not store.exists(prefix + f"{point_id}.png")


def test_a_failed_tap_does_not_fail_the_photo(app, client, auth):
    """A failed tap reports its reason and leaves the photo done."""
    auth.register()
    photo_id, _ = finished_photo(app, client, auth)
    job_id = tap(client, auth, photo_id).get_json()["job_id"]
    source = DatabaseJobSource(app)
    source.claim()
    source.fail(job_id, "No luck.")
    assert client.get(f"/api/v1/jobs/{job_id}/result").get_json() == {"error": "No luck."}
    assert client.get(f"/api/v1/photos/{photo_id}").get_json()["status"] == "done"


def test_taps_are_claimed_before_waiting_analyses(app, client, auth):
    """A child's tap is served before photos waiting for analysis."""
    auth.register()
    photo_id, _ = finished_photo(app, client, auth)
    form = {"mode": "everything", "image": (io.BytesIO(photo_bytes("dog.jpg")), "dog.jpg")}
    client.post("/api/v1/photos", data=form, headers=auth.api_headers())
    job_id = tap(client, auth, photo_id).get_json()["job_id"]
    assert DatabaseJobSource(app).claim().job_id == job_id


@pytest.mark.parametrize(("body", "status"), [
    ({"x": -1, "y": 5}, 400), ({"x": 5, "y": 1e9}, 400), ({"x": "5", "y": 5}, 400),
    ({"x": True, "y": 5}, 400), ({"x": 5}, 400), ([1, 2], 400),
])
def test_bad_points_are_refused(app, client, auth, body, status):
    """Points that are not numbers inside the photo are refused with a reason."""
    auth.register()
    photo_id, _ = finished_photo(app, client, auth)
    response = client.post(f"/api/v1/photos/{photo_id}/point", json=body,
                           headers=auth.api_headers())
    assert response.status_code == status and "error" in response.get_json()


def test_taps_wait_for_the_analysis_and_are_limited(app, client, auth):
    """No taps before the photo is done; at most three waiting taps a user."""
    auth.register()
    form = {"mode": "everything", "image": (io.BytesIO(photo_bytes("dog.jpg")), "dog.jpg")}
    pending = client.post("/api/v1/photos", data=form, headers=auth.api_headers()).get_json()
    assert tap(client, auth, pending["photo_id"]).status_code == 409
    DatabaseJobSource(app).claim()  # the worker is busy with it
    photo_id, _ = finished_photo(app, client, auth)
    codes = [tap(client, auth, photo_id).status_code for _ in range(4)]
    assert codes == [202, 202, 202, 429]


def test_other_families_photos_and_taps_are_not_found(app, client, auth, make_client):
    """Another account's photos, taps, words and favourites answer 404."""
    auth.register()
    photo_id, _ = finished_photo(app, client, auth)
    job_id = tap(client, auth, photo_id).get_json()["job_id"]
    other, other_auth = make_client("other@example.com")
    headers = other_auth.api_headers()
    assert tap(other, other_auth, photo_id, headers=headers).status_code == 404
    for url in (f"/api/v1/jobs/{job_id}/result", f"/api/v1/jobs/{job_id}/cutout.png",
                f"/api/v1/photos/{photo_id}/words"):
        assert other.get(url).status_code == 404
    assert other.post(f"/api/v1/photos/{photo_id}/words", json={"word": "dog"},
                      headers=headers).status_code == 404
    assert other.put(f"/api/v1/photos/{photo_id}/favourite", json={"favourite": True},
                     headers=headers).status_code == 404
    assert other.post(f"/photos/{photo_id}/favourite", data={
        "csrf_token": csrf_token(other), "favourite": "1"}).status_code == 404


def test_state_changes_need_the_csrf_token(app, client, auth):
    """Taps, words, favourites and settings need the CSRF token."""
    auth.register()
    photo_id, _ = finished_photo(app, client, auth)
    assert tap(client, auth, photo_id, headers={}).status_code == 400
    assert client.post(f"/api/v1/photos/{photo_id}/words", json={"word": "dog"}).status_code == 400
    assert client.put(f"/api/v1/photos/{photo_id}/favourite",
                      json={"favourite": True}).status_code == 400
    assert client.post("/settings", data={"rate": "1.0"}).status_code == 400
    assert client.post(f"/photos/{photo_id}/words", data={"word": "dog"}).status_code == 400
    assert client.get(f"/api/v1/photos/{photo_id}/words").get_json() == {"words": []}


def test_words_we_learned(app, client, auth):
    """Words are cleaned, kept once, listed in order and removable."""
    auth.register()
    photo_id, _ = finished_photo(app, client, auth)
    url, headers = f"/api/v1/photos/{photo_id}/words", auth.api_headers()
    first = client.post(url, json={"word": "  Teddy   Bear "}, headers=headers)
    assert first.status_code == 201 and first.get_json()["word"]["word"] == "teddy bear"
    again = client.post(url, json={"word": "teddy bear"}, headers=headers).get_json()
    assert len(again["words"]) == 1  # no duplicates
    for bad in ("", "x" * 41, "<b>dog</b>", "dog2", None):
        response = client.post(url, json={"word": bad}, headers=headers)
        assert response.status_code == 400 and response.get_json()["error"]
    client.post(url, json={"word": "chien"}, headers=headers)
    words = client.get(url).get_json()["words"]
    assert [w["word"] for w in words] == ["teddy bear", "chien"]
    assert client.delete(f"{url}/{words[0]['id']}", headers=headers).status_code == 204
    assert client.delete(f"{url}/{words[0]['id']}", headers=headers).status_code == 404



def test_the_job_of_a_photo_is_its_analysis(app, client, auth):
    """Photo.job is the analysis, not the latest tap."""
    auth.register()
    photo_id, _ = finished_photo(app, client, auth)
    tap(client, auth, photo_id)
    with app.app_context():
        jobs = db.session.scalars(db.select(Job).where(Job.photo_id == photo_id)).all()
        assert {j.kind for j in jobs} == {"analyse", "point"}
        assert jobs[0].photo.job.kind == "analyse"
    assert json.loads(client.get(f"/api/v1/photos/{photo_id}").get_data())["status"] == "done"


def test_new_words_are_a_words_job_with_its_objects_and_overlay(app, client, auth, make_client):
    """POST /find queues a "words" re-prompt with the prompt as parsed; when done, its result
    lists what was found (with masks and named flags) and its overlay JPEG is served to the
    owner only; bad prompts and unfinished photos are refused with a reason."""
    auth.register()
    photo_id, size = finished_photo(app, client, auth)
    find = f"/api/v1/photos/{photo_id}/find"
    for body in ({"prompt": " , . "}, {"prompt": 3}, {}, None):
        response = client.post(find, json=body, headers=auth.api_headers())
        assert response.status_code == 400 and response.get_json()["error"]
    response = client.post(find, json={"prompt": "Ball . Teddy bear"},
                           headers=auth.api_headers())
    assert response.status_code == 202
    queued = response.get_json()
    source = DatabaseJobSource(app)
    request = source.claim()
    assert (request.job_id, request.kind) == (queued["job_id"], "words")
    assert request.params == {"prompt": "ball, teddy bear"}  # parsed once, on the way in
    assert client.get(queued["result_url"]).status_code == 409
    ball = rect_object("ball", (20, 30, 120, 130), size)
    source.complete(request.job_id, AnalysisResult(
        width=size[0], height=size[1], mode="grounded", prompt="ball, teddy bear",
        objects=[ball], weights={"mobile_sam": "unverified"}), b"\xff\xd8\xff-overlay")

    result = client.get(queued["result_url"]).get_json()
    assert result["kind"] == "words" and result["prompt"] == "ball, teddy bear"
    assert [(o["label"], o["named"]) for o in result["objects"]] == [("ball", True)]
    assert result["objects"][0]["mask"]["size"] == [size[1], size[0]]
    picture = client.get(result["overlay_url"])
    assert picture.status_code == 200 and picture.mimetype == "image/jpeg"
    assert picture.data == b"\xff\xd8\xff-overlay"
    assert client.get(f"/api/v1/jobs/{request.job_id}/cutout.png").status_code == 404
    other, _ = make_client("other@example.com")
    assert other.get(result["overlay_url"]).status_code == 404
    assert other.get(queued["result_url"]).status_code == 404
    photo = client.get(f"/api/v1/photos/{photo_id}").get_json()
    assert [o["label"] for o in photo["objects"]] == ["object 1", "object 2"]  # left alone


def test_new_words_wait_for_the_analysis(app, client, auth):
    auth.register()
    form = {"mode": "everything", "image": (io.BytesIO(photo_bytes("dog.jpg")), "dog.jpg")}
    ids = client.post("/api/v1/photos", data=form, headers=auth.api_headers()).get_json()
    response = client.post(f"/api/v1/photos/{ids['photo_id']}/find", json={"prompt": "dog"},
                           headers=auth.api_headers())
    assert response.status_code == 409 and "still being looked at" in response.get_json()["error"]
