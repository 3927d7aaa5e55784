"""Photo file storage behind one small interface (a local directory by default)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


class StorageError(Exception):
    """A file could not be stored, read or deleted."""


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

    def get(self, key: str) -> bytes:
        """Return the bytes stored under ``key``.

        Raises:
            FileNotFoundError: nothing is stored under ``key``.
        """
        return self._path(key).read_bytes()

    def exists(self, key: str) -> bool:
        """Return True if a file is stored under ``key``."""
        return self._path(key).is_file()

    def local_path(self, key: str) -> Path:
        """Return the local file path of ``key`` (for ``send_file``)."""
        return self._path(key)

    def delete_prefix(self, prefix: str) -> None:
        """Delete every file whose key starts with the directory ``prefix`` (e.g. ``u1/p2/``)."""
        path = self._path(prefix)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
