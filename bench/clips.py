"""Clips with a known camera motion, made from a still photo (a pan or a zoom across it), for
the video benchmark and the tests: where the motion puts any point of the photo in any frame
is known exactly, so tracked masks can be checked against it.

A :class:`Motion` maps photo pixels to frame pixels at time t:
``frame_xy = (photo_xy - origin(t)) * scale(t)``, the window of the photo seen at t being
``origin(t) .. origin(t) + size / scale(t)``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Motion:
    """A camera moving over a photo.

    Attributes:
        size: (width, height) of the frames, px.
        start: (x, y) photo pixel at the frames' top-left corner at t = 0.
        velocity: (vx, vy) photo pixels per second the window moves (a pan).
        zoom_per_s: the scale's growth per second (0: none; 0.1: 10% closer each second);
            the zoom keeps the window's centre still, a pan moves it.
        photo_scale: frame pixels per photo pixel at t = 0.
    """

    size: tuple[int, int]
    start: tuple[float, float]
    velocity: tuple[float, float] = (0.0, 0.0)
    zoom_per_s: float = 0.0
    photo_scale: float = 1.0

    def scale(self, t: float) -> float:
        """Frame pixels per photo pixel at time ``t`` s."""
        return self.photo_scale * (1.0 + self.zoom_per_s * t)

    def origin(self, t: float) -> tuple[float, float]:
        """Photo pixel at the frame's top-left corner at time ``t`` s."""
        w, h = self.size
        s0, s = self.scale(0.0), self.scale(t)
        cx = self.start[0] + w / (2 * s0) + self.velocity[0] * t
        cy = self.start[1] + h / (2 * s0) + self.velocity[1] * t
        return cx - w / (2 * s), cy - h / (2 * s)

    def to_frame(self, xy: np.ndarray, t: float) -> np.ndarray:
        """Photo pixel coordinates (..., 2) -> frame pixel coordinates at time ``t``."""
        ox, oy = self.origin(t)
        return (np.asarray(xy, dtype=np.float64) - (ox, oy)) * self.scale(t)

    def box_at(self, box: Sequence[float], t: float) -> tuple[float, float, float, float]:
        """A photo box (x0, y0, x1, y1) as seen in the frame at time ``t``, clipped to it."""
        (x0, y0), (x1, y1) = self.to_frame(np.array([box[:2], box[2:]]), t)
        w, h = self.size
        return (max(0.0, x0), max(0.0, y0), min(float(w), x1), min(float(h), y1))

    def frame(self, photo: np.ndarray, t: float) -> np.ndarray:
        """The (H, W, 3) uint8 frame at time ``t``: the photo window resampled (bilinear)."""
        import cv2

        s = self.scale(t)
        ox, oy = self.origin(t)
        matrix = np.array([[s, 0.0, -ox * s], [0.0, s, -oy * s]], dtype=np.float64)
        return cv2.warpAffine(photo, matrix, self.size, flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REFLECT)  # fmt: skip


def frames_of(photo: np.ndarray, motion: Motion, times: Sequence[float]) -> Iterator[np.ndarray]:
    """The frames of ``motion`` over ``photo`` at ``times`` (seconds), one at a time."""
    for t in times:
        yield motion.frame(photo, t)


def write_clip(
    path: Path,
    frames: Iterator[np.ndarray] | Sequence[np.ndarray],
    *,
    fps: float = 30.0,
    times: Sequence[float] | None = None,
    codec: str = "libx264",
    rotation: int = 0,
    audio: bool = False,
    metadata: dict[str, str] | None = None,
    container: str | None = None,
) -> Path:
    """Encode RGB frames (H, W, 3 uint8, even sizes) into a clip with PyAV.

    Args:
        times: each frame's timestamp in seconds (a variable frame rate); None: ``i / fps``.
        codec: "libx264", "libx265", "libvpx-vp9", "mpeg4", ...
        rotation: display matrix, counter-clockwise degrees (as a phone writes it).
        audio: add a 1-kHz tone track as long as the video.
        metadata: container metadata (e.g. {"location": "+48.8584+002.2945/"}).
        container: FFmpeg format name; None: from the suffix.
    """
    import av

    frames = iter(frames)
    first = next(frames)
    with av.open(str(path), "w", format=container) as out:
        tb = Fraction(1, 30000)  # MPEG-4 Part 2 allows denominators up to 65535
        stream = out.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.height, stream.width = first.shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.time_base = tb
        if codec == "libx264":
            stream.options = {"preset": "ultrafast", "crf": "18"}
        if rotation:
            stream.set_display_rotation(rotation)
        stream.codec_context.time_base = tb
        sound = _tone_stream(out) if audio else None
        for key, value in (metadata or {}).items():
            out.metadata[key] = value
        last_t = 0.0
        for i, image in enumerate(itertools.chain([first], frames)):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            last_t = times[i] if times is not None else i / fps
            frame.pts = round(last_t / tb)
            frame.time_base = tb
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
        if sound is not None:
            _encode_tone(out, sound, last_t + 1.0 / fps)
    return path


def _tone_stream(out: Any) -> Any:
    """Add a mono 48-kHz AAC stream to an output container (before anything is muxed)."""
    stream = out.add_stream("aac", rate=48000)
    stream.layout = "mono"
    return stream


def _encode_tone(out: Any, stream: Any, seconds: float) -> None:
    """Encode a 1-kHz tone of ``seconds`` into ``stream`` of ``out``."""
    import av

    rate = 48000
    samples = np.sin(2 * np.pi * 1000 * np.arange(int(seconds * rate)) / rate)
    chunk = 1024
    for start in range(0, len(samples), chunk):
        block = samples[start : start + chunk].astype(np.float32)[None, :]
        frame = av.AudioFrame.from_ndarray(block, format="fltp", layout="mono")
        frame.sample_rate = rate
        frame.pts = start
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)


def sound_only(path: Path, seconds: float = 1.0) -> Path:
    """Write an M4A file with a tone and no video (a song sent as a clip)."""
    import av

    with av.open(str(path), "w", format="mp4") as out:
        _encode_tone(out, _tone_stream(out), seconds)
    return path


def pan_clip(
    path: Path,
    photo: Image.Image,
    *,
    size: tuple[int, int] = (320, 240),
    seconds: float = 2.0,
    fps: float = 30.0,
    velocity: tuple[float, float] = (30.0, 0.0),
    zoom_per_s: float = 0.0,
    start: tuple[float, float] | None = None,
    **kwargs: object,
) -> Motion:
    """Write a pan (and/or zoom) over ``photo`` (RGB) to ``path``; return its motion.

    The photo is first scaled so the frame covers a third of its width at t = 0 (start:
    that window's top-left, photo pixels; None: a quarter in from the left, centred
    vertically). Frame count: ``round(seconds * fps)``. Extra keyword arguments go to
    :func:`write_clip`.
    """
    pixels = np.asarray(photo.convert("RGB"))
    height, width = pixels.shape[:2]
    photo_scale = size[0] / (width / 3)
    window_h = size[1] / photo_scale
    if start is None:
        start = (width / 4, max(0.0, (height - window_h) / 2))
    motion = Motion(size=size, start=start, velocity=velocity, zoom_per_s=zoom_per_s,
                    photo_scale=photo_scale)  # fmt: skip
    times = [i / fps for i in range(round(seconds * fps))]
    write_clip(path, frames_of(pixels, motion, times), fps=fps, **kwargs)  # type: ignore[arg-type]
    return motion
