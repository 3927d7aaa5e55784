"""Every bad upload is refused with a clear message and nothing half-written."""

import io
import zipfile

import pytest
from PIL import Image

from app.imaging import ImageRejected, normalise_upload
from tests.conftest import photo_bytes


def encode(image, fmt, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kwargs)
    return buf.getvalue()


def zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("payload.html", "<b>hi</b>")
    return buf.getvalue()


def test_iphone_heic_is_accepted_and_stored_as_jpeg():
    from pillow_heif import register_heif_opener

    register_heif_opener()
    heic = encode(Image.open(io.BytesIO(photo_bytes("dog.jpg"))).resize((400, 267)), "HEIF")
    result = normalise_upload(heic)
    assert result.size == (400, 267)
    assert Image.open(io.BytesIO(result.jpeg)).format == "JPEG"


@pytest.mark.parametrize("tail", [b"<script>alert(1)</script>", b"<?php system($x); ?>",
                                  b"<!DOCTYPE html><p>", zip_bytes()],
                         ids=["html-script", "php", "html-doc", "zip"])
def test_polyglots_are_refused(tail):
    with pytest.raises(ImageRejected, match="not a picture"):
        normalise_upload(photo_bytes() + tail)


def test_bytes_after_the_jpeg_end_alone_are_fine():
    """Phones append data (motion-photo video) after the JPEG; that is not a polyglot."""
    assert normalise_upload(photo_bytes() + b"\x00\x00\x00\x18ftypmp42" + bytes(5000)).size


def api_upload(client, auth, data: bytes, name="x.jpg", **form):
    form = {"mode": "everything", **form, "image": (io.BytesIO(data), name)}
    return client.post("/api/v1/photos", data=form, headers=auth.api_headers())


@pytest.mark.parametrize(("data", "form", "status", "message"), [
    (b"", {}, 415, "empty"),
    (photo_bytes()[:20000], {}, 415, "damaged"),
    (b"just some text", {}, 415, "not a photo"),
    (b"<html><body>hello</body></html>", {}, 415, "not a picture"),
    (b'<svg xmlns="http://www.w3.org/2000/svg"/>', {}, 415, "not a picture"),
    (photo_bytes() + b"<script>x</script>", {}, 415, "not a picture"),
    (encode(Image.new("RGB", (1, 1)), "PNG"), {}, 415, "too small"),
    (encode(Image.new("1", (100000, 10)), "PNG"), {}, 415, "too"),
    (photo_bytes(), {"mode": "grounded", "prompt": ""}, 400, "type what to look for"),
    (photo_bytes(), {"mode": "grounded", "prompt": "cat " * 2500}, 400, "too long"),
    (photo_bytes(), {"mode": "grounded", "prompt": "cat\x00\x1b[2J"}, 400, "control"),
], ids=["empty", "truncated", "text", "html", "svg", "polyglot", "1x1", "100000x10",
        "no-prompt", "10k-prompt", "control-chars"])
def test_api_refuses_bad_uploads_and_writes_nothing(app, client, auth, data, form, status,
                                                    message):
    auth.register()
    response = api_upload(client, auth, data, **form)
    assert response.status_code == status
    assert message in response.get_json()["error"]
    assert client.get("/api/v1/photos").get_json() == {"photos": []}
    root = app.extensions["photo_storage"].root
    assert not root.exists() or not any(p.is_file() for p in root.rglob("*"))


def test_too_many_pending_jobs_get_429_with_retry_after(app, client, auth):
    auth.register()
    app.config["MAX_PENDING_JOBS"] = 2
    small = encode(Image.open(io.BytesIO(photo_bytes())).resize((320, 213)), "JPEG")
    assert [api_upload(client, auth, small).status_code for _ in range(2)] == [202, 202]
    refused = api_upload(client, auth, small)
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0 and "waiting" in refused.get_json()["error"]
    assert len(client.get("/api/v1/photos").get_json()["photos"]) == 2


def test_too_large_form_upload_gets_a_friendly_page(app, client, auth):
    """The upload form takes a photo or a video, so its requests may be as large as a video
    (MAX_VIDEO_BYTES); a photo over MAX_CONTENT_LENGTH is refused by the view (413, after the
    CSRF check), a request over the video limit before anything is read."""
    auth.register()
    token = auth.api_headers()["X-CSRFToken"]
    app.config["MAX_CONTENT_LENGTH"] = 10_000
    response = client.post("/", data={"mode": "everything", "csrf_token": token, "image": (
        io.BytesIO(photo_bytes()), "dog.jpg")})
    assert response.status_code == 413
    assert "smaller photo" in response.get_data(as_text=True)
    app.config["MAX_VIDEO_BYTES"] = 20_000
    response = client.post("/", data={"mode": "everything", "csrf_token": token, "video": (
        io.BytesIO(b"\0" * 30_000), "clip.mp4")})
    assert response.status_code == 413
    assert "This file is too large: a photo can be at most" in response.get_data(as_text=True)
    assert client.get("/api/v1/photos").get_json() == {"photos": []}


@pytest.mark.parametrize("kind", ["photo", "video"])
def test_an_upload_whose_files_cannot_all_be_stored_leaves_no_row_and_no_file(
        app, client, auth, monkeypatch, tmp_path, kind):
    """The first file is written, the second fails (a full disk): 503, and neither the row,
    its job nor the written file is left behind."""
    from app.db import Job, Photo
    from app.extensions import db
    from app.storage import StorageError
    from tests.videos import make_clip, upload_video

    auth.register()
    store = app.extensions["photo_storage"]
    real_put = store.put
    written = []

    def fill_up(key: str, data: bytes) -> None:
        if written:
            raise StorageError(f"could not store {key}: No space left on device")
        written.append(key)
        real_put(key, data)

    monkeypatch.setattr(store, "put", fill_up)
    if kind == "photo":
        response = api_upload(client, auth, photo_bytes())
    else:
        clip = make_clip(tmp_path / "clip.mp4", size=(160, 120))
        response = upload_video(client, auth, clip.read_bytes(), mode="point",
                                points="[[0, 80, 60]]")
    assert response.status_code == 503
    assert f"could not save your {kind}" in response.get_json()["error"]
    assert written, "the first file was written before the failure"
    with app.app_context():
        assert db.session.query(Photo).count() == 0 and db.session.query(Job).count() == 0
    root = store.local_path("")
    assert not [p for p in root.rglob("*") if p.is_file()]
