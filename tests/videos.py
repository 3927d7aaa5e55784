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


def finish_video_job(app, objects) -> str:
    """Claim the next queued video job and complete it with synthetic tracks, for pages that
    must not depend on random-weight models (as ``tests.results.finish_next_job`` does for
    photos): ``objects`` is a list of ``(label, named, color_name, box_at)`` where
    ``box_at(frame_index)`` gives the object's rectangle (x0, y0, x1, y1 px, exclusive) on
    that frame or None where it is absent. The overlay is drawn and encoded by the worker's own
    code (``models.video.output``) on the stored clip's frames; the result is marked as made
    with unverified weights. Returns the job id."""
    import tempfile

    import numpy as np

    from app.queue.database import DatabaseJobSource
    from models.render.palette import color_for
    from models.segment.mask import Mask
    from models.video.io import iter_frames, probe_video
    from models.video.output import (
        OverlayWriter,
        VideoObject,
        VideoResult,
        draw_frame,
        frame_entries,
        jpeg,
    )

    source = DatabaseJobSource(app)
    request = source.claim()
    assert request is not None and request.kind == "video", "no queued video job"
    info = probe_video(request.video_path)
    tracks = {i + 1: VideoObject(i + 1, label, named, color_for(i), color_name, 0.9)
              for i, (label, named, color_name, _) in enumerate(objects)}
    frames, posters = [], []
    with tempfile.TemporaryDirectory(prefix="video-result-") as tmp:
        overlay = Path(tmp) / "overlay.mp4"
        with OverlayWriter(overlay, (info.width, info.height), info.fps) as writer:
            for frame in iter_frames(request.video_path):
                masks = {}
                for object_id, (*_, box_at) in zip(tracks, objects, strict=True):
                    box = box_at(frame.index)
                    pixels = np.zeros((info.height, info.width), dtype=bool)
                    if box is not None:
                        pixels[box[1]:box[3], box[0]:box[2]] = True
                    masks[object_id] = Mask.from_array(pixels) if box is not None else None
                drawn = draw_frame(frame.image, masks, tracks)
                writer.write(drawn, frame.time_s)
                frames.append(frame_entries(frame, masks, tracks))
                posters = posters or [jpeg(drawn)]
        result = VideoResult(
            width=info.width, height=info.height, fps=info.fps, duration_s=info.duration_s,
            frame_count=len(frames), processed_fps=5.0, mode="point", prompt=None,
            prompt_frame=0, objects=list(tracks.values()), frames=frames,
            weights={"sam2_video": "unverified"})
        source.complete_video(request.job_id, result, overlay, result.json_bytes(), posters[0])
    return request.job_id
