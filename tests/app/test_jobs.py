"""Jobs that cannot run fail with a readable reason and keep the photo."""

import io
from dataclasses import replace

from app.db import Job
from app.extensions import db
from app.queue.database import DatabaseJobSource
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
        source.recover_stale()  # what the live workers' recovery loop does at every beat
        assert source.claim() is not None
        assert client.get(f"/api/v1/jobs/{ids['job_id']}").get_json()["status"] == "running"
    source.recover_stale()
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


def test_a_running_analysis_offers_its_preview_until_it_is_done(app, client, auth, make_client):
    """The worker's first picture (everything mode's masks before their names) is stored
    beside the photo, offered as the job's ``preview_url`` to the owner only while the job
    runs, and dropped from the job once the result is saved; a wrapped (heart-beating)
    source passes it on."""
    from PIL import Image

    from app.worker.heartbeat import BeatingSource
    from models.render.overlay import encode_png
    from models.result import AnalysisResult

    auth.register()
    ids = submit(client, auth)
    url = f"/api/v1/jobs/{ids['job_id']}"
    assert client.get(url).get_json()["preview_url"] is None  # queued
    beats = []

    class Heartbeat:
        def job_started(self, job_id):
            beats.append(("started", job_id))

        def job_finished(self, job_id):
            beats.append(("finished", job_id))

    source = BeatingSource(DatabaseJobSource(app), Heartbeat())
    request = source.claim()
    assert request is not None and client.get(url).get_json()["preview_url"] is None
    png = encode_png(Image.new("RGB", (64, 48), (200, 30, 30)))
    source.preview(request.job_id, png)
    preview_url = client.get(url).get_json()["preview_url"]
    assert preview_url == f"/photos/{ids['photo_id']}/preview.png"
    answer = client.get(preview_url)
    assert answer.status_code == 200 and answer.mimetype == "image/png"
    assert answer.data == png
    other, _ = make_client("other@example.com")
    assert other.get(preview_url).status_code == 404
    assert other.get(url).status_code == 404
    size = request.image.size
    source.complete(request.job_id, AnalysisResult(
        width=size[0], height=size[1], mode="everything", prompt=None, objects=[],
        weights={"mobile_sam": "unverified"}), png)  # fmt: skip
    done = client.get(url).get_json()
    assert done["status"] == "done" and done["preview_url"] is None
    source.preview(request.job_id, png)  # too late: ignored
    assert client.get(url).get_json()["preview_url"] is None
    assert beats == [("started", request.job_id), ("finished", request.job_id)]
