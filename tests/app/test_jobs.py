"""Jobs that cannot run fail with a readable reason and keep the photo."""

import io
from dataclasses import replace

from app.db import Job
from app.extensions import db
from app.jobs import DatabaseJobSource
from models.service import InferenceService
from models.worker import process_one
from tests.conftest import photo_bytes


def submit(client, auth, mode="everything", prompt=None):
    data = {"mode": mode, "image": (io.BytesIO(photo_bytes()), "dog.jpg")}
    if prompt:
        data["prompt"] = prompt
    response = client.post("/api/v1/photos", data=data, headers=auth.api_headers())
    assert response.status_code == 202
    return response.get_json()


def test_missing_weights_fail_the_job_with_the_command_and_path(app, client, auth, tmp_path,
                                                               service_config, monkeypatch):
    monkeypatch.delenv("MOBILE_SAM_CHECKPOINT", raising=False)
    auth.register()
    ids = submit(client, auth)
    empty = replace(service_config, model_dir=tmp_path / "no-models",
                    mobile_sam_checkpoint=None,
                    grounding_dino_model="IDEA-Research/grounding-dino-tiny",
                    allow_unverified_weights=False)
    assert process_one(DatabaseJobSource(app), InferenceService(empty)) is True
    job = client.get(f"/api/v1/jobs/{ids['job_id']}").get_json()
    assert job["status"] == "failed"
    assert "flask models download" in job["error"]
    assert str(tmp_path / "no-models") in job["error"]
    photo = client.get(f"/api/v1/photos/{ids['photo_id']}").get_json()
    assert photo["status"] == "failed" and photo["error"] == job["error"]
    assert client.get(photo["original_url"]).status_code == 200  # the photo is kept
    page = client.get(f"/photos/{ids['photo_id']}").get_data(as_text=True)
    assert "flask models download" in page


def test_worker_that_died_is_retried_then_failed(app, client, auth):
    auth.register()
    ids = submit(client, auth)
    source = DatabaseJobSource(app)
    source.timeout = source.timeout * 0  # every running job counts as stale
    for _ in range(2):  # claimed twice by workers that die without a word
        assert source.claim() is not None
        assert client.get(f"/api/v1/jobs/{ids['job_id']}").get_json()["status"] == "running"
    assert source.claim() is None
    job = client.get(f"/api/v1/jobs/{ids['job_id']}").get_json()
    assert job["status"] == "failed" and "worker stopped" in job["error"]
    with app.app_context():
        assert db.session.get(Job, ids["job_id"]).attempts == 2


def test_upload_errors_are_json_and_write_nothing(app, client, auth):
    auth.register()
    headers = auth.api_headers()
    cases = [
        ({"mode": "everything", "image": (io.BytesIO(b""), "empty.jpg")}, 415),
        ({"mode": "everything", "image": (io.BytesIO(b"<html>hi</html>"), "page.jpg")}, 415),
        ({"mode": "everything", "image": (io.BytesIO(photo_bytes()[:5000]), "cut.jpg")}, 415),
        ({"mode": "grounded", "prompt": " , . ", "image": (io.BytesIO(photo_bytes()), "a.jpg")},
         400),
        ({"mode": "sideways", "image": (io.BytesIO(photo_bytes()), "a.jpg")}, 400),
        ({"mode": "everything"}, 400),
    ]
    for data, status in cases:
        response = client.post("/api/v1/photos", data=data, headers=headers)
        assert response.status_code == status, (data, response.get_json())
        assert response.get_json()["error"]
    assert client.get("/api/v1/photos").get_json() == {"photos": []}
    storage = app.extensions["photo_storage"].root
    assert not storage.exists() or not any(p.is_file() for p in storage.rglob("*"))


def test_too_large_upload_is_413_json(app, client, auth):
    auth.register()
    app.config["MAX_CONTENT_LENGTH"] = 50_000
    response = client.post("/api/v1/photos", headers=auth.api_headers(),
                           data={"mode": "everything",
                                 "image": (io.BytesIO(photo_bytes()), "dog.jpg")})
    assert response.status_code == 413
    assert "too large" in response.get_json()["error"]
