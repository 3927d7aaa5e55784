"""Videos through the web app: the upload checks and stores the clip (no sound, no metadata)
and queues its job at once, every bad input is refused with a reason and nothing written,
only the owner sees a video and its files, and delete removes every file."""

from __future__ import annotations

import io
import json
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from app.db import Job, Photo
from app.extensions import db
from bench.clips import sound_only, write_clip
from tests.conftest import photo_bytes
from tests.videos import GPS, make_clip, upload_video


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> bytes:
    """2 s, 10 fps, 320x240 pan across dog.jpg, with a sound track and a GPS position, as a
    phone records it."""
    path = tmp_path_factory.mktemp("clips") / "dog.mp4"
    return make_clip(path, audio=True, metadata={"location": GPS}).read_bytes()


def stored_files(app) -> list[str]:
    """Every file in the app's storage, as keys."""
    root = app.extensions["photo_storage"].root
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) \
        if root.exists() else []


def test_a_video_is_stored_without_sound_or_metadata_and_queued(app, client, auth, clip):
    auth.register()
    response = upload_video(client, auth, clip, mode="point", points="[[0, 160, 120]]")
    assert response.status_code == 202, response.get_json()
    ids = response.get_json()
    video = client.get(f"/api/v1/videos/{ids['video_id']}").get_json()
    assert video["kind"] == "video" and video["status"] == "queued"
    assert (video["width"], video["height"], video["frame_count"]) == (320, 240, 20)
    assert video["duration_s"] == pytest.approx(2.0) and video["fps"] == pytest.approx(10.0)
    assert video["mode"] == "point" and video["codec"] == "h264"
    assert video["overlay_url"] is None and video["json_url"] is None  # not tracked yet
    job = client.get(f"/api/v1/jobs/{ids['job_id']}").get_json()
    assert (job["kind"], job["status"], job["video_id"]) == ("video", "queued", ids["video_id"])
    assert job["frames_done"] is None and job["frames_total"] is None
    with app.app_context():
        params = json.loads(db.session.get(Job, ids["job_id"]).params)
    assert params == {"frame": 0, "points": [[160.0, 120.0]], "max_duration_s": 15.0}

    stored = client.get(video["clip_url"])
    assert stored.status_code == 200 and stored.mimetype == "video/mp4"
    with av.open(io.BytesIO(stored.data)) as container:
        assert not container.streams.audio  # the sound is not kept
        assert "location" not in container.metadata  # nor where it was filmed
        assert container.streams.video[0].frames == 20
    poster = Image.open(io.BytesIO(client.get(video["poster_url"]).data))
    assert poster.format == "JPEG" and poster.size == (320, 240)
    thumb = Image.open(io.BytesIO(client.get(video["thumb_url"]).data))
    assert thumb.format == "JPEG" and max(thumb.size) <= 480

    page = client.get(video["page_url"]).get_data(as_text=True)
    assert "Following the things you tapped" in page and video["poster_url"] in page
    assert client.get(f"/photos/{ids['video_id']}").headers["Location"] == video["page_url"]
    library = client.get("/library").get_data(as_text=True)
    assert "play-badge" in library and ">0:02<" in library and "2 seconds long" in library
    assert video["page_url"] in library and "1 video, newest first" in library
    assert [v["id"] for v in client.get("/api/v1/videos").get_json()["videos"]] == [
        ids["video_id"]]
    assert client.get("/api/v1/photos").get_json() == {"photos": []}  # photos only


def test_the_clip_is_served_with_byte_ranges(client, auth, clip):
    """iOS Safari plays a video only from a server that answers byte ranges."""
    auth.register()
    ids = upload_video(client, auth, clip, mode="everything").get_json()
    url = client.get(f"/api/v1/videos/{ids['video_id']}").get_json()["clip_url"]
    whole = client.get(url).data
    part = client.get(url, headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and part.data == whole[:100]
    assert part.headers["Content-Range"] == f"bytes 0-99/{len(whole)}"
    saved = client.get(url + "?download=1")
    assert f"filename=video-{ids['video_id']}-clip.mp4" in saved.headers["Content-Disposition"]


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


def _solid(size: tuple[int, int], n: int) -> list[np.ndarray]:
    w, h = size
    return [np.full((h, w, 3), 60 + 5 * i, dtype=np.uint8) for i in range(n)]


def _written(directory: Path, name: str, **kwargs) -> bytes:
    """Bytes of a clip written by ``bench.clips.write_clip`` into ``directory``."""
    return write_clip(directory / name, **kwargs).read_bytes()


BAD_VIDEOS = {
    # name: (make(directory, clip) -> bytes, form fields, status, words of the reason)
    "empty": (lambda d, c: b"", {}, 415, "empty"),
    "text": (lambda d, c: b"just some text, not a video\n" * 40, {}, 415, "not a video"),
    "jpeg-as-video": (lambda d, c: photo_bytes(), {}, 415, "still picture"),
    "png-as-video": (lambda d, c: _png(), {}, 415, "still picture"),
    "one-frame": (lambda d, c: _written(d, "one.mp4", frames=_solid((64, 48), 1)), {}, 415,
                  "still picture"),
    "sound-only": (lambda d, c: sound_only(d / "song.m4a").read_bytes(), {}, 415,
                   "only sound"),
    "truncated": (lambda d, c: c[: len(c) // 2], {}, 415, "not a video"),
    "undecodable": (lambda d, c: c[:64] + bytes(range(256)) * 200, {}, 415, "not a video"),
    "too-long": (lambda d, c: _written(d, "long.mp4", frames=_solid((64, 48), 17), fps=1.0),
                 {}, 415, "17 s long; the longest is 15 s"),
    "too-small": (lambda d, c: _written(d, "tiny.mp4", frames=_solid((16, 16), 5)), {}, 415,
                  "too small"),
    "over-4k": (lambda d, c: _written(d, "wide.mp4", frames=_solid((3856, 64), 2)), {}, 415,
                "too large"),
    "unknown-mode": (lambda d, c: c, {"mode": "sideways"}, 400, "Tap what to follow"),
    "no-taps": (lambda d, c: c, {"mode": "point"}, 400, "Tap at least one thing"),
    "taps-not-json": (lambda d, c: c, {"mode": "point", "points": "here"}, 400,
                      "Tap at least one thing"),
    "taps-not-numbers": (lambda d, c: c, {"mode": "point", "points": '[[0, "a", 3]]'}, 400,
                         "x must be a number"),
    "taps-on-two-frames": (lambda d, c: c, {"mode": "point",
                                            "points": "[[0, 10, 10], [3, 20, 20]]"}, 400,
                           "same frame"),
    "tap-outside": (lambda d, c: c, {"mode": "point", "points": "[[0, 400, 10]]"}, 400,
                    "outside the picture (320x240)"),
    "nine-taps": (lambda d, c: c, {"mode": "point", "points": json.dumps([[0, 5, 5]] * 9)},
                  400, "at most 8"),
    "frame-past-the-end": (lambda d, c: c, {"mode": "everything", "frame": "20"}, 400,
                           "has 20 frames"),
    "negative-frame": (lambda d, c: c, {"mode": "everything", "frame": "-1"}, 400,
                       "whole number"),
    "time-past-the-end": (lambda d, c: c, {"mode": "everything", "time_s": "9.5"}, 400,
                          "only 2.0 s long"),
    "empty-name": (lambda d, c: c, {"mode": "grounded", "prompt": " , . "}, 400, ""),
}


@pytest.mark.parametrize("case", BAD_VIDEOS, ids=list(BAD_VIDEOS))
def test_bad_videos_are_refused_with_a_reason_and_nothing_is_written(app, client, auth, clip,
                                                                    tmp_path, case):
    make, fields, status, words = BAD_VIDEOS[case]
    auth.register()
    response = upload_video(client, auth, make(tmp_path, clip), **fields)
    assert response.status_code == status, response.get_json()
    assert words in response.get_json()["error"]
    assert client.get("/api/v1/videos").get_json() == {"videos": []}
    assert stored_files(app) == []
    with app.app_context():
        assert db.session.query(Job).count() == 0 and db.session.query(Photo).count() == 0


def test_a_request_without_a_video_is_refused(client, auth):
    auth.register()
    response = client.post("/api/v1/videos", headers=auth.api_headers(), data={"mode": "point"})
    assert response.status_code == 400 and "'video'" in response.get_json()["error"]


def test_a_video_over_the_size_limit_is_413_json(app, client, auth, clip):
    auth.register()
    app.config["MAX_VIDEO_BYTES"] = len(clip) // 2
    response = upload_video(client, auth, clip)
    assert response.status_code == 413
    assert "This video is too large" in response.get_json()["error"]
    app.config["MAX_VIDEO_BYTES"] = len(clip) * 2  # larger than a photo may be: still taken
    app.config["MAX_CONTENT_LENGTH"] = len(clip) // 2
    assert upload_video(client, auth, clip).status_code == 202


def test_another_account_gets_404_for_the_video_its_files_and_job(app, client, auth, clip,
                                                                  make_client):
    auth.register()
    ids = upload_video(client, auth, clip, mode="everything").get_json()
    video = client.get(f"/api/v1/videos/{ids['video_id']}").get_json()
    other, other_auth = make_client("stranger@example.com")
    urls = [f"/api/v1/videos/{ids['video_id']}", f"/api/v1/jobs/{ids['job_id']}",
            video["page_url"], video["clip_url"], video["poster_url"], video["thumb_url"],
            f"/videos/{ids['video_id']}/overlay.mp4", f"/videos/{ids['video_id']}/objects.json",
            f"/photos/{ids['video_id']}"]
    for url in urls:
        assert other.get(url).status_code == 404, url
    assert other.delete(f"/api/v1/videos/{ids['video_id']}",
                        headers=other_auth.api_headers()).status_code == 404
    assert other.get("/api/v1/videos").get_json() == {"videos": []}
    # The owner: a video is not a photo (nor a photo a video) to the API's photo routes.
    assert client.get(f"/api/v1/photos/{ids['video_id']}").status_code == 404
    assert client.post(f"/api/v1/photos/{ids['video_id']}/point", json={"x": 1, "y": 1},
                       headers=auth.api_headers()).status_code == 404
    assert client.get(f"/photos/{ids['video_id']}/original.jpg").status_code == 404
    assert client.get(video["clip_url"]).status_code == 200


def test_no_js_form_takes_a_video_and_opens_its_page(client, auth, clip):
    auth.register()
    token = auth.api_headers()["X-CSRFToken"]
    response = client.post("/", data={"mode": "grounded", "prompt": "dog", "csrf_token": token,
                                      "video": (io.BytesIO(clip), "clip.mov")})
    assert response.status_code == 302 and response.headers["Location"].startswith("/videos/")
    video = client.get("/api/v1/videos").get_json()["videos"][0]
    assert (video["mode"], video["prompt"]) == ("grounded", "dog")
    refused = client.post("/", data={"mode": "everything", "csrf_token": token,
                                     "video": (io.BytesIO(photo_bytes()), "clip.mp4")})
    assert refused.status_code == 400
    assert "This is a still picture, not a video." in refused.get_data(as_text=True)


def test_the_paused_time_picks_the_frame_shown_also_at_a_variable_frame_rate(app, client, auth,
                                                                            tmp_path):
    """The page sends the paused <video>'s currentTime; the job gets the frame shown then,
    from the clip's timestamps (a phone slows its frame rate in dim light)."""
    times = [0.0, 0.1, 0.2, 0.5, 0.9, 1.0, 1.4]
    frames = [np.full((48, 64, 3), 40 * i, dtype=np.uint8) for i in range(len(times))]
    data = _written(tmp_path, "vfr.mp4", frames=frames, times=times)
    auth.register()
    app.config["MAX_PENDING_JOBS"] = 20
    for time_s, frame in ((0.0, 0), (0.1, 1), (0.45, 2), (0.5, 3), (0.99, 4), (1.39, 5),
                          (1.4, 6)):
        response = upload_video(client, auth, data, mode="point", time_s=time_s,
                                points="[[10, 20]]")
        assert response.status_code == 202, response.get_json()
        with app.app_context():
            params = json.loads(db.session.get(Job, response.get_json()["job_id"]).params)
        assert (params["frame"], params["points"]) == (frame, [[10.0, 20.0]]), time_s
    grounded = upload_video(client, auth, data, mode="grounded", prompt="dog", time_s="0.95")
    with app.app_context():
        assert json.loads(db.session.get(Job, grounded.get_json()["job_id"]).params)[
            "frame"] == 4
