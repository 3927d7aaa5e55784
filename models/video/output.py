"""What a tracked clip gives back: the overlay video (each object tinted, outlined and named on
every frame where it is, as photos are drawn by ``models.render.overlay``) and the per-frame
JSON of masks and boxes (:class:`VideoResult`)."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from models.render.palette import hex_color
from models.result import ObjectResult
from models.segment.rle import mask_to_rle
from models.video.io import Frame
from models.video.track import Masks

#: Longest side of the overlay video and the JSON masks, px: 1080p on a 4K clip. A phone
#: screen shows no more, and drawing plus H.264 encoding cost grows with the pixels.
RESULT_SIDE = 1920
#: libx264 settings of the overlay: constant quality 23 (x264's default), "veryfast" (about
#: 3x the frames per second of "medium" for ~10% more bytes at equal quality), High profile,
#: 4:2:0 (what iOS Safari and Android Chrome decode in hardware).
X264_OPTIONS = {"crf": "23", "preset": "veryfast", "profile": "high"}


@dataclass
class VideoObject:
    """One followed object, the same through the clip.

    Attributes:
        object_id: 1-based id, as in each frame's entries.
        label: a vocabulary word or "something?" (everything, taps) or the phrase (grounded).
        named: True when ``label`` is a name said with confidence.
        color: (r, g, b) 0-255 of its tint, outline and label (``models.render.palette``).
        color_name: its main colour on the chosen frame ("red"), or None.
        score: 0-1, as for photos (mask quality or detection score).
    """

    object_id: int
    label: str
    named: bool
    color: tuple[int, int, int]
    color_name: str | None = None
    score: float = 1.0

    def to_json(self) -> dict[str, Any]:
        """{"object_id", "label", "named", "color" "#rrggbb", "color_name"}."""
        return {"object_id": self.object_id, "label": self.label, "named": bool(self.named),
                "color": hex_color(self.color), "color_name": self.color_name}  # fmt: skip


def frame_entries(frame: Frame, masks: Masks, objects: dict[int, VideoObject]
                  ) -> dict[str, Any]:  # fmt: skip
    """One frame of the JSON: {"frame_index", "time_s", "objects": [...]}. Each object is
    {"object_id", "label", "box" [x0, y0, x1, y1] px (x1/y1 exclusive), "area" px, "mask"
    COCO RLE {"size": [h, w], "counts": str}}, or {"object_id", "label", "absent": true}
    where it is not in the frame."""
    entries = []
    for object_id, mask in masks.items():
        label = objects[object_id].label
        if mask is None:
            entries.append({"object_id": object_id, "label": label, "absent": True})
            continue
        entries.append({
            "object_id": object_id, "label": label, "box": [round(v, 1) for v in mask.box],
            "area": int(mask.area), "mask": mask_to_rle(np.asarray(mask)),
        })  # fmt: skip
    return {"frame_index": frame.index, "time_s": round(frame.time_s, 4), "objects": entries}


@dataclass
class VideoResult:
    """Everything found in one clip.

    Attributes:
        width, height: size of the result's frames and masks, px (the clip as displayed,
            scaled down to ``RESULT_SIDE`` on the long side if larger; even numbers).
        fps, duration_s, frame_count: of the clip.
        processed_fps: frames per second the tracker saw (the rest carried).
        mode: "point", "everything" or "grounded"; prompt: the grounded phrases' text.
        prompt_frame: the chosen frame (0-based) the objects were marked on.
        objects: the followed objects (:class:`VideoObject`).
        frames: one entry per frame (:func:`frame_entries`).
        weights: provenance of each model used ("official" | "unverified").
        timings: seconds per stage; "first_masks" is from the job's start to the chosen
            frame's masks.
    """

    width: int
    height: int
    fps: float
    duration_s: float
    frame_count: int
    processed_fps: float
    mode: str
    prompt: str | None
    prompt_frame: int
    objects: list[VideoObject]
    frames: list[dict[str, Any]] = field(default_factory=list)
    weights: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The JSON download: {"video": {width, height, fps, duration_s, frame_count,
        processed_fps}, "mode", "prompt", "prompt_frame", "weights", "objects": [...],
        "frames": [...]} (an object absent from a frame is listed there with
        ``"absent": true`` and no box or mask)."""
        return {
            "video": {"width": self.width, "height": self.height, "fps": round(self.fps, 3),
                      "duration_s": round(self.duration_s, 3),
                      "frame_count": self.frame_count,
                      "processed_fps": self.processed_fps},
            "mode": self.mode,
            "prompt": self.prompt,
            "prompt_frame": self.prompt_frame,
            "weights": dict(self.weights),
            "objects": [o.to_json() for o in self.objects],
            "frames": self.frames,
        }  # fmt: skip

    def json_bytes(self) -> bytes:
        """:meth:`to_json` as compact UTF-8 JSON."""
        return json.dumps(self.to_json(), separators=(",", ":")).encode()


class OverlayWriter:
    """Writes the overlay video: H.264 (libx264, ``X264_OPTIONS``), yuv420p, MP4 with the index
    first (``+faststart``), no audio, frames at their own timestamps (variable frame rates
    kept). Plays inline on iOS Safari and Android Chrome (``playsinline muted``).

    Args:
        path: the MP4 to write.
        size: (W, H), even numbers (4:2:0 needs them).
        fps: the clip's average frame rate (the stream's nominal rate; timestamps rule).
    """

    TIME_BASE = Fraction(1, 90000)  # MP4's usual video clock

    def __init__(self, path: Path, size: tuple[int, int], fps: float) -> None:
        import av

        if size[0] % 2 or size[1] % 2:
            raise ValueError(f"overlay size must be even, got {size}")
        self.size = size
        self.frames = 0
        self._last_pts = -1
        self._container = av.open(str(path), "w", format="mp4",
                                  options={"movflags": "+faststart"})  # fmt: skip
        stream = self._container.add_stream(
            "libx264", rate=Fraction(fps).limit_denominator(1001) if fps > 0 else 30
        )
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.time_base = self.TIME_BASE
        stream.codec_context.time_base = self.TIME_BASE
        stream.options = dict(X264_OPTIONS)
        self._stream = stream

    def write(self, image: np.ndarray, time_s: float) -> None:
        """Encode one (H, W, 3) uint8 RGB frame shown at ``time_s`` seconds (a frame whose
        timestamp would not increase is shown one tick after the previous one)."""
        import av

        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        pts = max(int(round(time_s / self.TIME_BASE)), self._last_pts + 1)
        frame.pts, frame.time_base = pts, self.TIME_BASE
        self._last_pts = pts
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        """Flush the encoder and finish the file."""
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()

    def __enter__(self) -> OverlayWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()
        else:
            self._container.close()


def draw_frame(image: np.ndarray, masks: Masks, objects: dict[int, VideoObject],
               *, labels: bool = True) -> np.ndarray:  # fmt: skip
    """The frame with each present object drawn as photos are (``render_overlay``: tint,
    outline, its name on it; no scores); absent objects are not drawn.

    Returns:
        (H, W, 3) uint8 RGB.
    """
    from models.render.overlay import render_overlay

    drawn = [
        ObjectResult(label=objects[oid].label, score=objects[oid].score, box=mask.box,
                     mask=mask, area=mask.area, color=objects[oid].color,
                     named=objects[oid].named)
        for oid, mask in masks.items() if mask is not None
    ]  # fmt: skip
    if not drawn:
        return image
    return np.asarray(render_overlay(Image.fromarray(image), drawn, scores=False,
                                     labels=labels))  # fmt: skip


def preview_png(image: np.ndarray, masks: Masks, objects: dict[int, VideoObject]) -> bytes:
    """The chosen frame with its first masks, as the photos' preview (screen size, colours
    and outlines, no labels), PNG bytes."""
    from models.render.overlay import encode_png, render_preview

    drawn = [
        ObjectResult(label=objects[oid].label, score=1.0, box=mask.box, mask=mask,
                     area=mask.area, color=objects[oid].color, named=objects[oid].named)
        for oid, mask in masks.items() if mask is not None
    ]  # fmt: skip
    return encode_png(render_preview(Image.fromarray(image), drawn))


def jpeg(image: np.ndarray, max_side: int = 640) -> bytes:
    """(H, W, 3) uint8 RGB as JPEG bytes, long side at most ``max_side`` (a poster)."""
    picture = Image.fromarray(image)
    picture.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()
