"""The main job end to end on real photos: upload, worker, overlay, JSON, library, privacy."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image, ImageOps

from app.queue.database import DatabaseJobSource
from models.segment.rle import rle_to_mask
from models.worker import process_one
from tests.conftest import photo_bytes


@pytest.fixture(scope="session")
def service(service_config):
    """One inference service (random-weight checkpoints) shared by the tests, as in a worker."""
    from models.service import InferenceService

    return InferenceService(service_config)


def upload(client, auth, name="dog.jpg", mode="everything", prompt=None, data=None):
    form = {"mode": mode, "image": (io.BytesIO(data or photo_bytes(name)), name)}
    if prompt is not None:
        form["prompt"] = prompt
    return client.post("/api/v1/photos", data=form, headers=auth.api_headers())


def run_worker_once(app, service) -> None:
    assert process_one(DatabaseJobSource(app), service) is True


@pytest.mark.parametrize(("name", "mode", "prompt"), [
    ("dog.jpg", "everything", None),
    ("car-and-bicycle.jpg", "grounded", "car, bicycle . person"),
])
def test_upload_analyse_and_find_again(app, client, auth, service, make_client,
                                       name, mode, prompt):
    auth.register()
    response = upload(client, auth, name, mode, prompt)
    assert response.status_code == 202
    ids = response.get_json()
    job = client.get(f"/api/v1/jobs/{ids['job_id']}").get_json()
    assert job["status"] == "queued" and job["photo_id"] == ids["photo_id"]

    run_worker_once(app, service)

    job = client.get(f"/api/v1/jobs/{ids['job_id']}").get_json()
    assert job["status"] == "done", job
    assert job["error"] is None and job["progress"] == 1.0
    photo = client.get(f"/api/v1/photos/{ids['photo_id']}").get_json()
    expected = ImageOps.exif_transpose(Image.open(io.BytesIO(photo_bytes(name)))).size
    assert (photo["width"], photo["height"]) == expected
    assert photo["mode"] == mode and photo["status"] == "done"
    assert photo["weights"]["mobile_sam"] == "unverified"  # test weights are never passed off
    if mode == "grounded":
        assert photo["prompt"] == "car, bicycle, person"

    answer = client.get(photo["overlay_url"])  # the worker's overlay: a JPEG of the photo
    assert answer.mimetype == "image/jpeg" and answer.data.startswith(b"\xff\xd8\xff")
    overlay = Image.open(io.BytesIO(answer.data))
    assert overlay.format == "JPEG" and overlay.size == expected
    with app.app_context():
        from app.db import Photo
        from app.extensions import db

        prefix = db.session.get(Photo, ids["photo_id"]).storage_prefix
    assert app.extensions["photo_storage"].get(prefix + "overlay.jpg") == answer.data
    assert not app.extensions["photo_storage"].exists(prefix + "overlay.png")
    original = Image.open(io.BytesIO(client.get(photo["original_url"]).data))
    assert original.size == expected and not original.getexif()

    data = json.loads(client.get(photo["json_url"]).data)
    assert len(data["objects"]) == len(photo["objects"])
    for obj, api_obj in zip(data["objects"], photo["objects"], strict=True):
        mask = rle_to_mask(obj["mask"])
        assert mask.shape == (expected[1], expected[0])
        assert int(mask.sum()) == obj["area"] == api_obj["area"]
        x0, y0, x1, y1 = obj["box"]
        assert 0 <= x0 <= x1 <= expected[0] and 0 <= y0 <= y1 <= expected[1]
        assert obj["label"] == api_obj["label"]
        # the colour word and what is said travel from the worker to the API unchanged
        assert (obj["color_name"], obj["description"]) == (api_obj["color_name"],
                                                           api_obj["description"])
        if mode == "grounded":
            assert obj["label"] in {"car", "bicycle", "person"}
    if mode == "everything":
        areas = [o["area"] for o in photo["objects"]]
        assert areas == sorted(areas, reverse=True)

    listed = client.get("/api/v1/photos").get_json()["photos"]
    assert [p["id"] for p in listed] == [ids["photo_id"]]
    page = client.get("/library").get_data(as_text=True)
    assert f"/photos/{ids['photo_id']}" in page
    assert client.get(f"/photos/{ids['photo_id']}").status_code == 200

    other, _ = make_client("stranger@example.com")
    for url in (f"/api/v1/photos/{ids['photo_id']}", f"/api/v1/jobs/{ids['job_id']}",
                f"/photos/{ids['photo_id']}", photo["original_url"], photo["overlay_url"],
                photo["json_url"], photo["thumb_url"]):
        assert other.get(url).status_code == 404, url
    assert other.get("/api/v1/photos").get_json() == {"photos": []}


def test_library_is_newest_first_and_delete_removes_files(app, client, auth):
    auth.register()
    first = upload(client, auth, "dog.jpg").get_json()["photo_id"]
    second = upload(client, auth, "bears.jpg").get_json()["photo_id"]
    listed = [p["id"] for p in client.get("/api/v1/photos").get_json()["photos"]]
    assert listed == [second, first]
    with app.app_context():
        from app.db import Photo
        from app.extensions import db

        folder = app.extensions["photo_storage"].local_path(
            db.session.get(Photo, first).storage_prefix)
    assert folder.is_dir()
    assert client.delete(f"/api/v1/photos/{first}", headers=auth.api_headers()).status_code == 204
    assert not folder.exists()
    assert client.get(f"/api/v1/photos/{first}").status_code == 404
    assert [p["id"] for p in client.get("/api/v1/photos").get_json()["photos"]] == [second]


def test_no_js_upload_form_redirects_to_the_photo(client, auth):
    auth.register()
    token = auth.api_headers()["X-CSRFToken"]
    response = client.post("/", data={"mode": "grounded", "prompt": "dog", "csrf_token": token,
                                      "image": (io.BytesIO(photo_bytes()), "dog.jpg")})
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/photos/")


def test_exif_orientation_is_applied(app, client, auth, service):
    auth.register()
    image = Image.new("RGB", (300, 200), (200, 30, 30))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    buf = io.BytesIO()
    image.save(buf, "JPEG", exif=exif)
    ids = upload(client, auth, "turned.jpg", data=buf.getvalue()).get_json()
    photo = client.get(f"/api/v1/photos/{ids['photo_id']}").get_json()
    assert (photo["width"], photo["height"]) == (200, 300)
    run_worker_once(app, service)
    photo = client.get(f"/api/v1/photos/{ids['photo_id']}").get_json()
    overlay = Image.open(io.BytesIO(client.get(photo["overlay_url"]).data))
    assert overlay.size == (200, 300)
    assert np.asarray(overlay).shape == (300, 200, 3)
