"""Photo file storage behind one small interface: a local directory by default, an
S3-compatible bucket (boto3) when ``S3_BUCKET`` is set, since Heroku dynos share no disk.

Keys look like ``u1/p2/original.jpg``; both stores refuse keys that would leave their root.
"""

from __future__ import annotations

import io
import logging
import mimetypes
import os
import shutil
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO, Protocol

log = logging.getLogger(__name__)


class StorageError(Exception):
    """A file could not be stored, read or deleted."""


class Storage(Protocol):
    """What the app needs from a file store (both implementations below)."""

    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` (replacing it). Raises StorageError."""

    def put_file(self, key: str, path: Path) -> None:
        """Store the file at ``path`` under ``key`` (a video: never read into memory whole).
        Raises StorageError."""

    def get(self, key: str) -> bytes:
        """Return the bytes under ``key``. Raises FileNotFoundError, StorageError."""

    def get_file(self, key: str, path: Path) -> None:
        """Write what is stored under ``key`` to the local file ``path`` (a worker's copy of
        a video). Raises FileNotFoundError, StorageError."""

    def exists(self, key: str) -> bool:
        """Return True if something is stored under ``key``. Raises StorageError."""

    def send_source(self, key: str) -> Path | BinaryIO:
        """What ``flask.send_file`` serves for ``key``. Raises FileNotFoundError, StorageError."""

    def delete(self, key: str) -> None:
        """Delete the file ``key`` if it exists. Raises StorageError."""

    def delete_prefix(self, prefix: str) -> None:
        """Delete everything under the directory ``prefix`` (e.g. ``u1/p2/``)."""


class LocalStorage:
    """Files under a root directory, addressed by keys such as ``u1/p2/original.jpg``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        """Use ``root`` (created on first write) as the storage directory."""
        self.root = Path(root).resolve()

    def _path(self, key: str) -> Path:
        """Return the file path of ``key``; raises StorageError for keys that leave the root."""
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise StorageError(f"invalid storage key {key!r}")
        return path

    def put(self, key: str, data: bytes) -> None:
        """Write ``data`` under ``key`` atomically (temporary file, then rename).

        Raises:
            StorageError: the disk refused the write.
        """
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except OSError as exc:
            raise StorageError(f"could not store {key}: {exc.strerror or exc}") from exc

    def put_file(self, key: str, path: Path) -> None:
        """Copy the file at ``path`` under ``key`` atomically (temporary file, then rename).

        Raises:
            StorageError: the file could not be read or the disk refused the write.
        """
        target = self._path(key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
            os.close(fd)
            shutil.copyfile(path, tmp)
            os.replace(tmp, target)
        except OSError as exc:
            raise StorageError(f"could not store {key}: {exc.strerror or exc}") from exc

    def get(self, key: str) -> bytes:
        """Return the bytes stored under ``key``.

        Raises:
            FileNotFoundError: nothing is stored under ``key``.
        """
        return self._path(key).read_bytes()

    def get_file(self, key: str, path: Path) -> None:
        """Copy the file stored under ``key`` to ``path``.

        Raises:
            FileNotFoundError: nothing is stored under ``key``. StorageError: the copy failed.
        """
        source = self._path(key)
        if not source.is_file():
            raise FileNotFoundError(key)
        try:
            shutil.copyfile(source, path)
        except OSError as exc:
            raise StorageError(f"could not read {key}: {exc.strerror or exc}") from exc

    def exists(self, key: str) -> bool:
        """Return True if a file is stored under ``key``."""
        return self._path(key).is_file()

    def local_path(self, key: str) -> Path:
        """Return the local file path of ``key``."""
        return self._path(key)

    def send_source(self, key: str) -> Path:
        """Return the file path of ``key``, so ``send_file`` adds ETag, Last-Modified and
        range support.

        Raises:
            FileNotFoundError: nothing is stored under ``key``.
        """
        path = self._path(key)
        if not path.is_file():
            raise FileNotFoundError(key)
        return path

    def delete(self, key: str) -> None:
        """Delete the file ``key`` if it exists.

        Raises:
            StorageError: the disk refused.
        """
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"could not delete {key}: {exc.strerror or exc}") from exc

    def delete_prefix(self, prefix: str) -> None:
        """Delete every file whose key starts with the directory ``prefix`` (e.g. ``u1/p2/``)."""
        path = self._path(prefix)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)


class S3Storage:
    """Objects in an S3-compatible bucket (AWS S3, Bucketeer, MinIO, moto...), private:
    the app serves them to their owner after its ownership check.

    The boto3 client is created on first use (no network at construction) and shared by the
    threads of the process (boto3 clients are thread-safe).
    """

    def __init__(self, bucket: str, *, prefix: str = "", endpoint_url: str | None = None,
                 region: str | None = None, access_key_id: str | None = None,
                 secret_access_key: str | None = None) -> None:
        """Store under ``prefix`` (e.g. ``"photos/"``) in ``bucket``.

        ``endpoint_url`` selects a non-AWS server (then path-style addressing); credentials and
        region left None come from boto3's usual chain (``AWS_*`` variables, instance role).
        """
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.endpoint_url = endpoint_url or None
        self._client_args = {"region_name": region or None,
                             "aws_access_key_id": access_key_id or None,
                             "aws_secret_access_key": secret_access_key or None}
        self._client: Any = None
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        """The boto3 S3 client (created once, thread-safe)."""
        with self._lock:
            if self._client is None:
                import boto3
                from botocore.config import Config

                options: dict[str, Any] = {"connect_timeout": 5, "read_timeout": 30,
                                           "retries": {"max_attempts": 3, "mode": "standard"}}
                if self.endpoint_url:  # S3-compatible servers: path-style, checksums as needed
                    options.update(s3={"addressing_style": "path"},
                                   request_checksum_calculation="when_required",
                                   response_checksum_validation="when_required")
                self._client = boto3.session.Session().client(
                    "s3", endpoint_url=self.endpoint_url, config=Config(**options),
                    **self._client_args)
            return self._client

    def _key(self, key: str) -> str:
        """Return the object key of ``key``; raises StorageError for keys that leave the root."""
        parts = key.split("/")
        if not key or key.startswith("/") or "\\" in key or ".." in parts:
            raise StorageError(f"invalid storage key {key!r}")
        return self.prefix + key

    def _call(self, action: str, key: str, method: str, **kwargs: Any) -> Any:
        """Run one client call; a missing object raises FileNotFoundError, anything else the
        server or network refuses raises StorageError."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, method)(Bucket=self.bucket, **kwargs)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("NoSuchKey", "404", "NotFound"):
                raise FileNotFoundError(key) from exc
            raise StorageError(f"could not {action} {key}: {code or exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"could not {action} {key}: {exc}") from exc

    def put(self, key: str, data: bytes) -> None:
        """Upload ``data`` as the object ``key`` (atomic on S3: readers see old or new).

        Raises:
            StorageError: the bucket refused the write or could not be reached.
        """
        content_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
        self._call("store", key, "put_object", Key=self._key(key), Body=data,
                   ContentType=content_type)

    def put_file(self, key: str, path: Path) -> None:
        """Upload the file at ``path`` as the object ``key`` (boto3's managed transfer:
        multipart for large files, never the whole file in memory).

        Raises:
            StorageError: the bucket refused the write or could not be reached.
        """
        from boto3.exceptions import Boto3Error

        content_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
        try:
            self._call("store", key, "upload_file", Filename=str(path), Key=self._key(key),
                       ExtraArgs={"ContentType": content_type})
        except Boto3Error as exc:  # S3UploadFailedError wraps the server's refusal
            raise StorageError(f"could not store {key}: {exc}") from exc

    def get_file(self, key: str, path: Path) -> None:
        """Download the object ``key`` to the local file ``path`` (boto3's managed transfer).

        Raises:
            FileNotFoundError: no such object. StorageError: the bucket could not be read.
        """
        self._call("read", key, "download_file", Key=self._key(key), Filename=str(path))

    def get(self, key: str) -> bytes:
        """Return the bytes of the object ``key``.

        Raises:
            FileNotFoundError: no such object. StorageError: the bucket could not be read.
        """
        body = self._call("read", key, "get_object", Key=self._key(key))["Body"]
        try:
            return body.read()
        finally:
            body.close()

    def exists(self, key: str) -> bool:
        """Return True if the object ``key`` exists (one HEAD request).

        Raises:
            StorageError: the bucket could not be reached.
        """
        try:
            self._call("look up", key, "head_object", Key=self._key(key))
        except FileNotFoundError:
            return False
        return True

    def size(self, key: str) -> int:
        """Return the size of the object ``key`` in bytes (one HEAD request).

        Raises:
            FileNotFoundError: no such object. StorageError: the bucket could not be reached.
        """
        return int(self._call("look up", key, "head_object", Key=self._key(key))[
            "ContentLength"])

    def read_range(self, key: str, start: int, stop: int) -> bytes:
        """Return bytes ``start`` to ``stop`` (exclusive) of the object ``key`` (a ranged GET:
        a video player asks for a clip piece by piece, and only that piece is fetched).

        Raises:
            FileNotFoundError: no such object. StorageError: the bucket could not be read.
        """
        body = self._call("read", key, "get_object", Key=self._key(key),
                          Range=f"bytes={start}-{stop - 1}")["Body"]
        try:
            return body.read()
        finally:
            body.close()

    def send_source(self, key: str) -> BinaryIO:
        """Return the object ``key`` as an in-memory stream (photos are a few MB at most), so
        the response has a Content-Length.

        Raises:
            FileNotFoundError: no such object. StorageError: the bucket could not be read.
        """
        return io.BytesIO(self.get(key))

    def delete(self, key: str) -> None:
        """Delete the object ``key`` (nothing happens if there is none).

        Raises:
            StorageError: the bucket refused or could not be reached.
        """
        self._call("delete", key, "delete_object", Key=self._key(key))

    def delete_prefix(self, prefix: str) -> None:
        """Delete every object under the directory ``prefix`` (list, then batch deletes of
        up to 1000 keys, the S3 limit).

        Like LocalStorage it does not raise once the database rows are gone: a failure is
        logged at error level with the prefix, for an operator to delete by hand.
        """
        full = self._key(prefix.rstrip("/") + "/")
        try:
            pages = self._call("list", prefix, "list_objects_v2", Prefix=full)
            while True:
                keys = [{"Key": item["Key"]} for item in pages.get("Contents", [])]
                if keys:
                    self._call("delete", prefix, "delete_objects",
                               Delete={"Objects": keys, "Quiet": True})
                if not pages.get("IsTruncated"):
                    return
                pages = self._call("list", prefix, "list_objects_v2", Prefix=full,
                                   ContinuationToken=pages["NextContinuationToken"])
        except (StorageError, FileNotFoundError):
            log.exception("could not delete s3://%s/%s: delete it by hand", self.bucket, full)


def make_storage(config: Mapping[str, Any]) -> Storage:
    """Return the configured store: S3Storage when ``S3_BUCKET`` is set, else LocalStorage
    in ``STORAGE_DIR``."""
    if config.get("S3_BUCKET"):
        return S3Storage(config["S3_BUCKET"], prefix=config.get("S3_PREFIX") or "",
                         endpoint_url=config.get("S3_ENDPOINT_URL"),
                         region=config.get("S3_REGION"),
                         access_key_id=config.get("S3_ACCESS_KEY_ID"),
                         secret_access_key=config.get("S3_SECRET_ACCESS_KEY"))
    return LocalStorage(config["STORAGE_DIR"])


def storage() -> Storage:
    """The current app's photo storage (set up by the factory from :func:`make_storage`)."""
    from flask import current_app

    return current_app.extensions["photo_storage"]
