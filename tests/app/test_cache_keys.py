"""A worker's cached data (image embedding, Grounding DINO features, vocabulary detections)
belongs to one picture: never served for another photo, whoever uploads it and whichever id
it gets, and forgotten once its photo is deleted."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from app.db import Job, Photo
from app.extensions import db
from app.files import ORIGINAL
from app.queue.database import DatabaseJobSource, photo_cache_key
from app.storage import storage
from models.service import InferenceService
from models.worker import forget_deleted, process_one
from tests.conftest import photo_bytes

SIZE = (640, 480)


def same_size_jpeg(name: str) -> bytes:
    """One of the shared photos as a JPEG of ``SIZE`` (two different pictures, one size, so a
    cache that checks only the size cannot tell them apart)."""
    image = Image.open(io.BytesIO(photo_bytes(name))).convert("RGB").resize(SIZE)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def upload(client, auth, data: bytes, mode="everything", prompt=None) -> dict:
    form = {"mode": mode, "image": (io.BytesIO(data), "photo.jpg")}
    if prompt is not None:
        form["prompt"] = prompt
    response = client.post("/api/v1/photos", data=form, headers=auth.api_headers())
    assert response.status_code == 202, response.get_data(as_text=True)
    return response.get_json()


def tap(client, auth, photo_id: int, x: float = 320, y: float = 240) -> str:
    response = client.post(f"/api/v1/photos/{photo_id}/point", json={"x": x, "y": y},
                           headers=auth.api_headers())
    assert response.status_code == 202, response.get_data(as_text=True)
    return response.get_json()["job_id"]


def ask_words(app, photo_id: int, prompt: str) -> str:
    """Queue a "words" re-prompt (new words on the photo's cached data) on the database."""
    with app.app_context():
        job = Job(photo_id=photo_id, kind="words", params=json.dumps({"prompt": prompt}))
        db.session.add(job)
        db.session.commit()
        return job.id


def job_result(app, job_id: str) -> dict:
    with app.app_context():
        job = db.session.get(Job, job_id)
        assert job.status == "done", (job.status, job.error)
        return json.loads(job.result)


def stored_photo(app, photo_id: int) -> Image.Image:
    with app.app_context():
        photo = db.session.get(Photo, photo_id)
        return Image.open(io.BytesIO(storage().get(photo.storage_prefix + ORIGINAL))).convert(
            "RGB")


def objects_of(result: dict) -> list[dict]:
    """The per-object data a user sees (label, box, mask RLE, named), without timings."""
    return [{k: o[k] for k in ("label", "box", "mask", "named") if k in o}
            for o in result["objects"]]


@pytest.fixture
def worker(service_config):
    """A worker's inference service, its caches empty at the start of each test."""
    return InferenceService(service_config)


def test_cache_keys_name_one_picture():
    one, other = same_size_jpeg("dog.jpg"), same_size_jpeg("bears.jpg")
    assert photo_cache_key(7, one) == photo_cache_key(7, one)
    assert photo_cache_key(7, one) != photo_cache_key(7, other)  # same id, another picture
    assert photo_cache_key(7, one) != photo_cache_key(8, one)
    assert photo_cache_key(7, one).startswith("photo-7-")


def test_ids_are_never_reused(app, make_client):
    client, auth = make_client("a@example.com")
    first = upload(client, auth, same_size_jpeg("dog.jpg"))["photo_id"]
    assert client.delete(f"/api/v1/photos/{first}", headers=auth.api_headers()).status_code == 204
    second = upload(client, auth, same_size_jpeg("dog.jpg"))["photo_id"]
    assert second > first  # the newest photo deleted, its id is not handed out again


def test_a_deleted_photos_cache_is_never_used_for_the_next_photo(app, make_client, worker,
                                                                  service_config):
    """User A's newest photo is analysed, tapped and deleted; user B uploads another picture
    of the same size. B's analysis, tap and new words come from B's photo: the same answers
    as a fresh worker's on B's photo, and A's cached data is forgotten on the next claim."""
    a_client, a_auth = make_client("a@example.com")
    b_client, b_auth = make_client("b@example.com")
    a_photo = upload(a_client, a_auth, same_size_jpeg("dog.jpg"))["photo_id"]
    source = DatabaseJobSource(app)
    assert process_one(source, worker)  # A's analysis: embedding, features, names cached
    tap(a_client, a_auth, a_photo)
    assert process_one(source, worker)
    [a_key] = worker.cached_keys()
    assert a_client.delete(f"/api/v1/photos/{a_photo}",
                           headers=a_auth.api_headers()).status_code == 204

    b_photo = upload(b_client, b_auth, same_size_jpeg("bears.jpg"))["photo_id"]
    assert process_one(source, worker)
    assert a_key not in worker.cached_keys()  # forgotten on the claim after the deletion
    b_tap = tap(b_client, b_auth, b_photo)
    assert process_one(source, worker)
    b_words = ask_words(app, b_photo, "bear, dog")
    assert process_one(source, worker)

    fresh = InferenceService(service_config)  # a worker that never saw A's photo
    picture = stored_photo(app, b_photo)
    point = fresh.segment_point(picture, (320, 240))
    words = fresh.analyze(picture, "grounded", ["bear", "dog"], new_words=True)
    # Same code path on the same pixels as the fresh service: equal by construction.
    assert objects_of(job_result(app, b_tap)) == objects_of(
        {"objects": [o.to_json() for o in point.objects]})
    assert objects_of(job_result(app, b_words)) == objects_of(words.to_json())
    with app.app_context():
        b_objects = b_client.get(f"/api/v1/photos/{b_photo}").get_json()["objects"]
    analysis = fresh.analyze(picture, "everything")
    assert [o["label"] for o in b_objects] == [o.label for o in analysis.objects]


def test_a_worker_forgets_the_photos_that_were_deleted(app, make_client, worker):
    client, auth = make_client("a@example.com")
    kept = upload(client, auth, same_size_jpeg("dog.jpg"))["photo_id"]
    source = DatabaseJobSource(app)
    assert process_one(source, worker)
    gone = upload(client, auth, same_size_jpeg("bears.jpg"))["photo_id"]
    assert process_one(source, worker)
    keys = worker.cached_keys()
    assert len(keys) == 2
    assert source.live_keys(keys | {"not-a-photo-key"}) == keys
    assert client.delete(f"/api/v1/photos/{gone}", headers=auth.api_headers()).status_code == 204
    [forgotten] = forget_deleted(source, worker)
    assert forgotten.startswith(f"photo-{gone}-")
    assert [key.startswith(f"photo-{kept}-") for key in worker.cached_keys()] == [True]
