"""Video jobs between the app and the worker: the queue hands the worker a local copy of the
stored clip, the real video job (small random-weight SAM 2 video model) stores the overlay
video, the JSON, the poster and the object rows at once, progress shows frames done / total
and the first masks, a worker killed mid-video is retried then failed with a reason, a result
that cannot be saved leaves nothing half-written, and delete removes every file."""

from __future__ import annotations

import io
import json
from pathlib import Path

import av
import pytest
from PIL import Image

from app.db import Job, Photo
from app.extensions import db
from app.queue.database import DatabaseJobSource
from app.storage import StorageError
from models.segment.rle import rle_to_mask
from models.worker import process_one
from tests.videos import make_clip, upload_video


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> bytes:
    """2 s, 10 fps, 320x240: a pan across dog.jpg."""
    return make_clip(tmp_path_factory.mktemp("clips") / "dog.mp4").read_bytes()


@pytest.fixture(scope="module")
def video_service(video_service_config):
    """A worker's inference service with the small random-weight SAM 2 video model."""
    from models.service import InferenceService

    return InferenceService(video_service_config)


def prefix_of(app, video_id: int) -> str:
    with app.app_context():
        return db.session.get(Photo, video_id).storage_prefix


def decoded(data: bytes) -> tuple[int, tuple[int, int], str]:
    """(frames, (width, height), codec) of an encoded video, every frame decoded."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        return len(frames), (frames[0].width, frames[0].height), stream.codec_context.name


def test_a_tapped_object_is_followed_and_the_result_served(app, client, auth, clip,
                                                          video_service, make_client):
    auth.register()
    ids = upload_video(client, auth, clip, mode="point", points="[[0, 160, 120]]").get_json()
    seen = []  # what the page's poll would see after each progress report

    class Watched(DatabaseJobSource):
        def progress(self, job_id, fraction, stage):
            super().progress(job_id, fraction, stage)
            job = client.get(f"/api/v1/jobs/{job_id}").get_json()
            seen.append((job["frames_done"], job["frames_total"]))

    source = Watched(app)
    assert process_one(source, video_service) is True
    assert source._clips == {}  # the worker's copy of the clip is gone
    counted = [done for done, total in seen if total]
    assert counted == sorted(counted) and len(counted) >= 5  # frame 1 of 10, 2 of 10, ...

    job = client.get(f"/api/v1/jobs/{ids['job_id']}").get_json()
    assert job["status"] == "done" and job["error"] is None and job["progress"] == 1.0
    # 2 s at VIDEO_FPS 5: about 10 frames tracked, counted up to all of them
    assert 8 <= job["frames_total"] <= 12 and job["frames_done"] == job["frames_total"]
    video = client.get(f"/api/v1/videos/{ids['video_id']}").get_json()
    assert video["status"] == "done" and video["weights"]["sam2_video"] == "unverified"
    assert len(video["objects"]) == 1 and video["objects"][0]["color"].startswith("#")

    overlay = client.get(video["overlay_url"])
    assert overlay.mimetype == "video/mp4"
    assert decoded(overlay.data) == (20, (320, 240), "h264")  # the clip's frames and size
    doc = json.loads(client.get(video["json_url"]).data)
    assert doc["video"]["frame_count"] == 20 and len(doc["frames"]) == 20
    assert [o["object_id"] for o in doc["objects"]] == [1]
    first = doc["frames"][0]["objects"][0]
    if not first.get("absent"):  # random weights: the tracker may lose it
        mask = rle_to_mask(first["mask"])
        assert mask.shape == (240, 320) and int(mask.sum()) == first["area"]
        assert video["objects"][0]["area"] == first["area"]
        assert video["objects"][0]["box"] == first["box"]
    poster = Image.open(io.BytesIO(client.get(video["overlay_poster_url"]).data))
    assert poster.format == "JPEG" and poster.size == (320, 240)

    page = client.get(video["page_url"]).get_data(as_text=True)
    assert f'src="{video["overlay_url"]}"' in page and "playsinline" in page
    assert "I followed 1 thing!" in page and "Test mode" in page  # random weights, said so
    other, _ = make_client("stranger@example.com")
    for url in (video["overlay_url"], video["json_url"], video["overlay_poster_url"]):
        assert other.get(url).status_code == 404, url


def test_progress_shows_frames_and_the_first_masks_to_the_owner_only(app, client, auth, clip,
                                                                     make_client):
    from app.worker.heartbeat import BeatingSource

    auth.register()
    ids = upload_video(client, auth, clip, mode="everything").get_json()
    url = f"/api/v1/jobs/{ids['job_id']}"

    class Heartbeat:
        def job_started(self, job_id):
            pass

        def job_finished(self, job_id):
            pass

    source = BeatingSource(DatabaseJobSource(app), Heartbeat())
    request = source.claim()
    assert request.kind == "video" and request.image is None and request.mode == "everything"
    stored = client.get(f"/videos/{ids['video_id']}/clip").data
    assert request.video_path.read_bytes() == stored  # a local copy of the stored clip
    assert request.params["frame"] == 0
    source.progress(request.job_id, 0.4, "Tracking: frame 4 of 10")
    source.video_frames(request.job_id, 4, 10)
    png = io.BytesIO()
    Image.new("RGB", (320, 240), (200, 30, 30)).save(png, "PNG")
    source.video_preview(request.job_id, png.getvalue())
    job = client.get(url).get_json()
    assert (job["status"], job["frames_done"], job["frames_total"]) == ("running", 4, 10)
    assert job["progress"] == 0.4 and job["stage"] == "Tracking: frame 4 of 10"
    assert job["preview_url"] == f"/videos/{ids['video_id']}/preview.png"
    assert client.get(job["preview_url"]).data == png.getvalue()
    page = client.get(f"/videos/{ids['video_id']}").get_data(as_text=True)
    assert "Frame 4 of 10" in page and 'value="40"' in page
    other, _ = make_client("stranger@example.com")
    assert other.get(job["preview_url"]).status_code == 404
    assert other.get(url).status_code == 404
    source.fail(request.job_id, "stopped by the test")
    assert not request.video_path.exists()  # the local copy goes with the job


def test_a_worker_killed_mid_video_is_retried_then_failed_with_a_reason(app, client, auth,
                                                                       clip):
    auth.register()
    ids = upload_video(client, auth, clip, mode="everything").get_json()
    source = DatabaseJobSource(app)
    source.timeout = source.timeout * 0  # every running job counts as stale
    for attempt in range(2):  # claimed by workers that die without a word
        source.recover_stale()
        assert source.claim() is not None
        video = client.get(f"/api/v1/videos/{ids['video_id']}").get_json()
        assert video["status"] == "running", attempt
    source.recover_stale()
    assert source.claim() is None
    job = client.get(f"/api/v1/jobs/{ids['job_id']}").get_json()
    assert job["status"] == "failed"
    assert "worker stopped while analysing this video, twice" in job["error"]
    video = client.get(f"/api/v1/videos/{ids['video_id']}").get_json()
    assert video["status"] == "failed" and video["error"] == job["error"]
    assert client.get(video["clip_url"]).status_code == 200  # the video stays
    page = client.get(video["page_url"]).get_data(as_text=True)
    assert "worker stopped while analysing this video" in page


def test_a_result_that_cannot_be_saved_leaves_nothing_half_written(app, client, auth, clip,
                                                                  video_service, monkeypatch):
    auth.register()
    ids = upload_video(client, auth, clip, mode="point", points="[[0, 100, 100]]").get_json()
    prefix = prefix_of(app, ids["video_id"])
    store = app.extensions["photo_storage"]
    before = sorted(p.name for p in store.local_path(prefix).iterdir())

    def full_disk(key: str, path: Path) -> None:
        raise StorageError(f"could not store {key}: No space left on device")

    monkeypatch.setattr(store, "put_file", full_disk)  # the overlay video cannot be stored
    assert process_one(DatabaseJobSource(app), video_service) is True
    job = client.get(f"/api/v1/jobs/{ids['job_id']}").get_json()
    assert job["status"] == "failed" and "could not be saved" in job["error"]
    video = client.get(f"/api/v1/videos/{ids['video_id']}").get_json()
    assert video["status"] == "failed" and video["objects"] == []
    # The preview shown while it ran stays; no JSON, overlay poster or overlay video.
    assert sorted(p.name for p in store.local_path(prefix).iterdir()) == sorted(
        [*before, "preview.png"])


def test_delete_removes_every_file_of_a_finished_video(app, client, auth, clip,
                                                       video_service):
    auth.register()
    ids = upload_video(client, auth, clip, mode="point", points="[[0, 60, 60]]").get_json()
    assert process_one(DatabaseJobSource(app), video_service) is True
    folder = app.extensions["photo_storage"].local_path(prefix_of(app, ids["video_id"]))
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["clip.mp4", "objects.json", "overlay-poster.jpg", "overlay.mp4",
                     "poster.jpg", "preview.png", "thumb.jpg"]
    response = client.delete(f"/api/v1/videos/{ids['video_id']}", headers=auth.api_headers())
    assert response.status_code == 204
    assert not folder.exists()
    assert client.get(f"/api/v1/videos/{ids['video_id']}").status_code == 404
    with app.app_context():
        assert db.session.get(Job, ids["job_id"]) is None
