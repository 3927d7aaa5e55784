"""Clips for the app's tests, made from the shared photos with PyAV (``bench.clips``: a pan
across a photo with a known motion), and uploading them through the API."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from bench.clips import pan_clip
from tests.conftest import PHOTOS

#: A GPS position as a phone writes it in an MP4's metadata.
GPS = "+48.8584+002.2945/"


def make_clip(path: Path, photo: str = "dog.jpg", *, size: tuple[int, int] = (320, 240),
              seconds: float = 2.0, fps: float = 10.0, **kwargs) -> Path:
    """Write a pan across ``photo`` (``PHOTOS``) to ``path`` (the container from its suffix):
    ``round(seconds * fps)`` frames of ``size`` (w, h); ``kwargs`` go to
    ``bench.clips.write_clip`` (codec, audio, metadata, rotation)."""
    pan_clip(path, Image.open(PHOTOS / photo), size=size, seconds=seconds, fps=fps, **kwargs)
    return path


def upload_video(client, auth, data: bytes, *, name: str = "clip.mp4", **form):
    """POST ``data`` to /api/v1/videos as the file ``name`` with the form fields ``form``."""
    fields = {key: str(value) for key, value in form.items()}
    return client.post("/api/v1/videos", headers=auth.api_headers(),
                       data={**fields, "video": (io.BytesIO(data), name)})
