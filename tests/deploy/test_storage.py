"""Photo storage in an S3-compatible bucket (moto's server on loopback), as dynos share no
disk: files written, served only to their owner through the app, deleted with the photo."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest

from app.config import s3_settings
from app.db import Photo
from app.extensions import db
from app.storage import LocalStorage, S3Storage, StorageError, make_storage
from tests.deploy.conftest import Parent
from tests.processes import free_port


def bucket_client(config):
    return boto3.client("s3", endpoint_url=config["S3_ENDPOINT_URL"],
                        aws_access_key_id="test", aws_secret_access_key="test",
                        region_name="us-east-1")


def keys(config, prefix=""):
    pages = bucket_client(config).get_paginator("list_objects_v2").paginate(
        Bucket=config["S3_BUCKET"], Prefix=prefix)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def test_settings_select_the_store_and_read_bucketeer(tmp_path):
    bucketeer = {"BUCKETEER_BUCKET_NAME": "b1", "BUCKETEER_AWS_ACCESS_KEY_ID": "AK",
                 "BUCKETEER_AWS_SECRET_ACCESS_KEY": "SK", "BUCKETEER_AWS_REGION": "eu-west-1"}
    settings = s3_settings(bucketeer)
    assert (settings["S3_BUCKET"], settings["S3_ACCESS_KEY_ID"], settings["S3_REGION"]) == \
        ("b1", "AK", "eu-west-1")
    assert s3_settings({**bucketeer, "S3_BUCKET": "mine"})["S3_BUCKET"] == "mine"
    assert isinstance(make_storage({"STORAGE_DIR": str(tmp_path), **s3_settings({})}),
                      LocalStorage)
    store = make_storage({"STORAGE_DIR": str(tmp_path), **settings, "S3_PREFIX": "/photos/"})
    assert isinstance(store, S3Storage) and store.prefix == "photos/"


def test_s3_storage_round_trip(s3_config):
    store = make_storage({**s3_config, "S3_PREFIX": "visionanything"})
    store.put("u1/p2/original.jpg", b"\xff\xd8jpeg")
    store.put("u1/p2/objects.json", b"{}")
    store.put("u1/p22/original.jpg", b"other photo")
    assert store.get("u1/p2/original.jpg") == b"\xff\xd8jpeg"
    assert store.send_source("u1/p2/objects.json").read() == b"{}"
    assert store.exists("u1/p2/original.jpg") and not store.exists("u1/p2/overlay.png")
    head = bucket_client(s3_config).head_object(Bucket=s3_config["S3_BUCKET"],
                                                Key="visionanything/u1/p2/original.jpg")
    assert head["ContentType"] == "image/jpeg"
    with pytest.raises(FileNotFoundError):
        store.get("u1/p2/overlay.png")
    with pytest.raises(FileNotFoundError):
        store.send_source("u1/p2/overlay.png")
    for bad in ("../u2/p1/original.jpg", "/etc/passwd", "u1/../../x", ""):
        with pytest.raises(StorageError):
            store.put(bad, b"x")
    store.delete_prefix("u1/p2/")
    assert keys(s3_config) == ["visionanything/u1/p22/original.jpg"]  # p22 is not under p2/


def test_s3_delete_prefix_pages_past_a_thousand_objects(s3_config):
    store = make_storage(s3_config)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: store.put(f"u1/p1/{n}.png", b"x"), range(1005)))
    store.put("u1/p10/original.jpg", b"kept")
    store.delete_prefix("u1/p1")
    assert keys(s3_config) == ["u1/p10/original.jpg"]


def test_unreachable_bucket_is_a_storage_error(s3_config):
    store = make_storage({**s3_config, "S3_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"})
    with pytest.raises(StorageError):
        store.put("u1/p1/original.jpg", b"x")
    with pytest.raises(StorageError):
        store.get("u1/p1/original.jpg")
    store.delete_prefix("u1/p1/")  # logged, not raised: the rows are already gone


def test_app_keeps_photos_in_the_bucket_and_serves_them_to_their_owner(make_app, s3_config,
                                                                         tmp_path):
    app = make_app(**s3_config)
    parent = Parent(app, "owner@example.com")
    owner, auth = parent.client, parent.auth
    other = Parent(app, "other@example.com").client
    ids = parent.upload("bears.jpg", mode="everything")
    photo = owner.get(f"/api/v1/photos/{ids['photo_id']}").get_json()
    with app.app_context():
        prefix = db.session.get(Photo, photo["id"]).storage_prefix
    assert keys(s3_config) == [prefix + "original.jpg", prefix + "thumb.jpg"]
    original = owner.get(photo["original_url"])
    assert original.status_code == 200 and original.mimetype == "image/jpeg"
    assert original.data == bucket_client(s3_config).get_object(
        Bucket=s3_config["S3_BUCKET"], Key=prefix + "original.jpg")["Body"].read()
    assert original.content_length == len(original.data)
    assert owner.get(photo["thumb_url"] + "?download=1").headers["Content-Disposition"] \
        .startswith("attachment")
    assert other.get(photo["original_url"]).status_code == 404  # only the owner
    assert not (tmp_path / "storage").exists()  # nothing on the local disk
    assert owner.delete(photo["page_url"].replace("/photos/", "/api/v1/photos/"),
                        headers=auth.api_headers()).status_code == 204
    assert keys(s3_config) == []


def test_s3_files_are_streamed_in_and_out_and_deleted_one_by_one(s3_config, tmp_path):
    """A video is uploaded from its file and a worker's copy downloaded to a file (boto3's
    managed transfers, multipart past 8 MB), never read into memory whole."""
    store = make_storage({**s3_config, "S3_PREFIX": "visionanything"})
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(bytes(range(256)) * 40_000)  # 10 MB: two parts
    store.put_file("u1/v2/clip.mp4", clip)
    head = bucket_client(s3_config).head_object(Bucket=s3_config["S3_BUCKET"],
                                                Key="visionanything/u1/v2/clip.mp4")
    assert head["ContentType"] == "video/mp4" and head["ContentLength"] == 10_240_000
    store.get_file("u1/v2/clip.mp4", tmp_path / "copy.mp4")
    assert (tmp_path / "copy.mp4").read_bytes() == clip.read_bytes()
    with pytest.raises(FileNotFoundError):
        store.get_file("u1/v2/clip.webm", tmp_path / "missing.webm")
    store.put("u1/v2/poster.jpg", b"\xff\xd8jpeg")
    store.delete("u1/v2/clip.mp4")
    store.delete("u1/v2/clip.mp4")  # already gone: nothing to do
    assert keys(s3_config) == ["visionanything/u1/v2/poster.jpg"]
    with pytest.raises(StorageError):
        store.put_file("../u2/clip.mp4", clip)


def test_app_keeps_videos_in_the_bucket_and_a_worker_reads_them(make_app, s3_config, tmp_path):
    from app.queue.database import DatabaseJobSource
    from tests.videos import make_clip, upload_video

    app = make_app(**s3_config)
    parent = Parent(app, "owner@example.com")
    clip = make_clip(tmp_path / "dog.mp4").read_bytes()
    ids = upload_video(parent.client, parent.auth, clip, mode="everything").get_json()
    video = parent.client.get(f"/api/v1/videos/{ids['video_id']}").get_json()
    prefix = f"u1/p{ids['video_id']}/"
    assert keys(s3_config) == [prefix + "clip.mp4", prefix + "poster.jpg", prefix + "thumb.jpg"]
    stored = parent.client.get(video["clip_url"]).data
    part = parent.client.get(video["clip_url"], headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.data == stored[100:200]
    assert part.headers["Content-Range"] == f"bytes 100-199/{len(stored)}"
    tail = parent.client.get(video["clip_url"], headers={"Range": "bytes=-50"})
    assert tail.status_code == 206 and tail.data == stored[-50:]
    past = parent.client.get(video["clip_url"], headers={"Range": f"bytes={len(stored)}-"})
    assert past.status_code == 416
    assert Parent(app, "other@example.com").client.get(video["clip_url"]).status_code == 404
    source = DatabaseJobSource(app)
    request = source.claim()  # the worker's local copy, downloaded from the bucket
    assert request.video_path.read_bytes() == stored
    source.fail(request.job_id, "stopped by the test")
    assert not request.video_path.exists()
    assert not (tmp_path / "storage").exists()  # nothing on the local disk
    assert parent.client.delete(f"/api/v1/videos/{ids['video_id']}",
                                headers=parent.auth.api_headers()).status_code == 204
    assert keys(s3_config) == []
