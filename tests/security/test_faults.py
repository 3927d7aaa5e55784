"""Faults during a job end in a failed job with a reason, never a lost photo or a crash loop."""

import io
import threading

from sqlalchemy.exc import OperationalError

from app.queue.database import DatabaseJobSource
from app.storage import StorageError
from models.service import InferenceService
from models.worker import process_one, run_worker
from tests.conftest import photo_bytes


def submit(client, auth):
    response = client.post("/api/v1/photos", headers=auth.api_headers(), data={
        "mode": "grounded", "prompt": "dog", "image": (io.BytesIO(photo_bytes()), "dog.jpg")})
    assert response.status_code == 202
    return response.get_json()


def test_storage_failure_while_saving_the_result_fails_the_job(app, client, auth,
                                                               service_config, monkeypatch):
    auth.register()
    ids = submit(client, auth)
    storage = app.extensions["photo_storage"]
    real_put = storage.put

    def full_disk(key, data):
        if key.endswith("overlay.jpg"):
            raise StorageError("could not store overlay.jpg: No space left on device")
        return real_put(key, data)

    monkeypatch.setattr(storage, "put", full_disk)
    assert process_one(DatabaseJobSource(app), InferenceService(service_config))
    job = client.get(f"/api/v1/jobs/{ids['job_id']}").get_json()
    assert job["status"] == "failed" and "could not be saved" in job["error"]
    photo = client.get(f"/api/v1/photos/{ids['photo_id']}").get_json()
    assert photo["status"] == "failed" and photo["objects"] == []
    assert client.get(photo["original_url"]).status_code == 200


def test_database_outage_does_not_kill_the_worker(app, client, auth, service_config):
    auth.register()
    ids = submit(client, auth)
    source = DatabaseJobSource(app)
    real_claim, calls = source.claim, []

    def flaky_claim():
        calls.append(1)
        if len(calls) <= 3:
            raise OperationalError("SELECT", {}, Exception("database is locked"))
        return real_claim()

    source.claim = flaky_claim
    stop = threading.Event()
    handled = run_worker(source, InferenceService(service_config), stop=stop,
                         poll_interval=0.01, max_jobs=1)
    assert handled == 1 and len(calls) == 4
    assert client.get(f"/api/v1/jobs/{ids['job_id']}").get_json()["status"] == "done"


def test_unreadable_stored_photo_fails_with_a_reason(app, client, auth, service_config):
    auth.register()
    ids = submit(client, auth)
    storage = app.extensions["photo_storage"]
    key = f"u1/p{ids['photo_id']}/original.jpg"
    storage.put(key, b"this is no longer a jpeg")
    assert process_one(DatabaseJobSource(app), InferenceService(service_config)) is False
    job = client.get(f"/api/v1/jobs/{ids['job_id']}").get_json()
    assert job["status"] == "failed" and "could not be read" in job["error"]
