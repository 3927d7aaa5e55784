"""What a family does with a video, behind the pages and the API: upload one with what to
follow in it (stored and queued, or nothing at all), find its own videos, delete.

The web request never runs a model: it checks the clip and makes the copy that is stored
(``models.video.io.clean_copy``: PyAV, by content; the video stream only, no audio, no
metadata), stores it and its poster frame, writes the rows, and queues a "video" job; the
worker tracks the chosen objects through the clip.
"""

from __future__ import annotations

import bisect
import io
import json
import logging
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import abort, current_app
from flask_login import current_user
from PIL import Image
from werkzeug.datastructures import FileStorage

from app.db import Job, Photo, User
from app.extensions import db
from app.files import POSTER, THUMB, clip_name
from app.imaging import THUMB_SIDE
from app.photos.service import TooManyPendingJobs, pending_jobs, save_with_files
from models.prompts import parse_prompt, prompt_text

log = logging.getLogger(__name__)

#: What to follow in a video: objects tapped on a frame (point prompts), things named in a
#: text prompt (Grounding DINO boxes on that frame), or everything mode on that frame.
VIDEO_MODES = ("point", "grounded", "everything")
#: Most taps on one video: each tap is one object to follow, and everything mode follows at
#: most this many too.
MAX_POINTS = 8


class VideoPromptError(ValueError):
    """What to follow was not understood; ``str(exc)`` says why, for the parent."""


@dataclass(frozen=True)
class VideoPrompt:
    """What to follow, as the upload asked for it (checked against the clip later).

    Attributes:
        mode: one of ``VIDEO_MODES``.
        prompt: grounded mode's phrases as stored (``models.prompts.prompt_text``), else None.
        frame: index of the frame the prompt is on (0 = the first), or None when ``time_s``
            gives it.
        time_s: seconds into the clip of the frame the prompt is on (the page's paused
            ``<video>``), or None.
        points: point prompts ``(x, y)`` in pixels of that frame as displayed ("point" mode).
    """

    mode: str
    prompt: str | None = None
    frame: int | None = 0
    time_s: float | None = None
    points: list[tuple[float, float]] = field(default_factory=list)


def _number(value: Any, what: str) -> float:
    """``value`` as a finite float. Raises VideoPromptError naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise VideoPromptError(f"{what} must be a number.")
    return float(value)


def _frame_index(value: Any) -> int:
    """``value`` as a frame index (a whole number >= 0). Raises VideoPromptError."""
    number = _number(value, "The frame")
    if number < 0 or number != int(number):
        raise VideoPromptError("The frame must be a whole number, 0 for the first frame.")
    return int(number)


def parse_video_prompt(mode: str | None, prompt: str | None = None,
                       points: str | None = None, frame: str | None = None,
                       time_s: str | None = None) -> VideoPrompt:
    """Read what to follow from the upload's form fields.

    Args:
        mode: "point", "grounded" or "everything"; missing: "point" when ``points`` is sent,
            else "everything".
        prompt: grounded mode's names, e.g. "cat, ball".
        points: JSON ``[[frame, x, y], ...]`` (all on one frame), or ``[[x, y], ...]`` when
            ``time_s`` gives the frame; x, y in pixels of the frame as displayed.
        frame: the frame index for grounded and everything modes (default 0).
        time_s: seconds into the clip instead of a frame index: the frame shown at that time.

    Returns:
        The prompt; its frame and points are checked against the clip by
        :func:`resolve_prompt`.

    Raises:
        VideoPromptError: an unknown mode, no or too many points, points that are not
            numbers or not on one frame, a frame or time that is not a number >= 0.
        models.errors.BadPromptError: grounded mode with a bad prompt.
    """
    mode = (mode or ("point" if points else "everything")).strip()
    if mode not in VIDEO_MODES:
        raise VideoPromptError("Choose “Tap what to follow”, “Find by name” or "
                               "“Find everything”.")
    at_time = None
    if time_s not in (None, ""):
        try:
            at_time = _number(float(time_s), "The time")
        except ValueError as exc:
            raise VideoPromptError("The time must be a number of seconds.") from exc
        if at_time < 0:
            raise VideoPromptError("The time must be 0 seconds or more.")
    index = None if at_time is not None else 0
    if frame not in (None, "") and at_time is None:
        try:
            index = _frame_index(float(frame))
        except ValueError as exc:
            raise VideoPromptError("The frame must be a whole number, 0 for the first "
                                   "frame.") from exc
    if mode == "grounded":
        return VideoPrompt("grounded", prompt_text(parse_prompt(prompt or "")), index, at_time)
    if mode == "everything":
        return VideoPrompt("everything", None, index, at_time)
    taps, index = _points(points, index, at_time is not None)
    return VideoPrompt("point", None, index, at_time, taps)


def _points(text: str | None, index: int | None,
            timed: bool) -> tuple[list[tuple[float, float]], int | None]:
    """The taps of ``text`` (see :func:`parse_video_prompt`) and the frame they are on."""
    try:
        value = json.loads(text or "")
    except ValueError:
        value = None
    shape = "[[x, y], ...]" if timed else "[[frame, x, y], ...]"
    if not isinstance(value, list) or not value:
        raise VideoPromptError(f"Tap at least one thing to follow (points as {shape}).")
    if len(value) > MAX_POINTS:
        raise VideoPromptError(f"Tap at most {MAX_POINTS} things to follow.")
    taps, frames = [], set()
    for point in value:
        if not isinstance(point, list) or len(point) != (2 if timed else 3):
            raise VideoPromptError(f"Send each point as {shape[1:-6]}.")
        if not timed:
            frames.add(_frame_index(point[0]))
        taps.append((_number(point[-2], "x"), _number(point[-1], "y")))
    if len(frames) > 1:
        raise VideoPromptError("Tap all the things to follow on the same frame.")
    return taps, (frames.pop() if frames else index)


#: A paused ``<video>`` reports the shown frame's own timestamp, give or take the rounding
#: of its clock (microseconds in Chromium and Safari): a millisecond covers it at any frame
#: rate a phone records (at 240 fps frames are 4 ms apart).
TIME_TOLERANCE_S = 1e-3


def frame_index_at(clip: Path, time_s: float) -> int:
    """Index of the frame shown ``time_s`` seconds into ``clip``: the last frame whose time
    (from the packets' timestamps, ``models.video.track.frame_times``: no decoding, right for
    variable frame rates) is at most ``time_s`` (+ ``TIME_TOLERANCE_S``); 0 before the first.

    Raises:
        models.video.errors.VideoError: the clip cannot be read.
    """
    from models.video.track import frame_times

    times = frame_times(clip)
    return max(0, bisect.bisect_right(times, time_s + TIME_TOLERANCE_S) - 1)


def resolve_prompt(prompt: VideoPrompt, info: Any, clip: Path) -> dict[str, Any]:
    """The job's params for ``prompt`` on the stored clip: ``{"frame", "points",
    "max_duration_s"}`` (``models.video.job``), the frame an index into the clip, the points
    ``[[x, y], ...]`` inside it, and the longest clip the worker takes (``MAX_VIDEO_S``).

    Args:
        prompt: from :func:`parse_video_prompt`.
        info: the stored clip's ``models.video.io.VideoInfo`` (width, height, frame_count).
        clip: the stored clip (a time is looked up in its timestamps).

    Raises:
        VideoPromptError: the frame or time is past the clip's end, or a point is outside
            the frame.
        models.video.errors.VideoError: the clip's timestamps could not be read.
    """
    if prompt.time_s is not None:
        if prompt.time_s > info.duration_s:
            raise VideoPromptError(f"The clip is only {info.duration_s:.1f} s long.")
        frame = frame_index_at(clip, prompt.time_s)
    else:
        frame = prompt.frame or 0
    if frame >= info.frame_count:
        raise VideoPromptError(f"The clip has {info.frame_count} frames (0 to "
                               f"{info.frame_count - 1}); frame {frame} is past its end.")
    for x, y in prompt.points:
        if not (0 <= x < info.width and 0 <= y < info.height):
            raise VideoPromptError(f"A tap is outside the picture ({info.width}x"
                                   f"{info.height}).")
    return {"frame": frame, "points": [list(p) for p in prompt.points],
            "max_duration_s": float(current_app.config["MAX_VIDEO_S"])}


def thumbnail_jpeg(jpeg: bytes, side: int = THUMB_SIDE) -> bytes:
    """A JPEG at most ``side`` pixels long (Lanczos; quality 85, no metadata) of ``jpeg``."""
    with Image.open(io.BytesIO(jpeg)) as image:
        image = image.convert("RGB")
        image.thumbnail((side, side), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        image.save(out, "JPEG", quality=85, optimize=True)
    return out.getvalue()


def submit_video(user: User, upload: FileStorage, prompt: VideoPrompt) -> tuple[Photo, Job]:
    """Check and store an uploaded clip and queue its tracking; nothing is half-written if any
    step fails.

    Args:
        user: the owner.
        upload: the uploaded file (its name and declared type are never trusted).
        prompt: what to follow (:func:`parse_video_prompt`).

    Returns:
        The committed video (a ``Photo`` row of kind "video", status "queued") and its job.

    Raises:
        TooManyPendingJobs: the user already has ``MAX_PENDING_JOBS`` jobs waiting.
        models.video.errors.VideoError: not a clip this app takes (its reason, for the parent).
        VideoPromptError: the prompt's frame or points do not fit the clip.
        app.storage.StorageError: the files could not be written (the rows are rolled back).
    """
    from models.video.io import clean_copy, poster_jpeg

    if pending_jobs(user) >= current_app.config["MAX_PENDING_JOBS"]:
        raise TooManyPendingJobs()
    with tempfile.TemporaryDirectory(prefix="visionanything-upload-") as tmp:
        received = Path(tmp) / "upload"
        upload.save(received)
        clean = clean_copy(received, Path(tmp) / "clip",
                           max_duration_s=float(current_app.config["MAX_VIDEO_S"]))
        received.unlink()
        info = clean.info
        params = resolve_prompt(prompt, info, clean.path)
        poster = poster_jpeg(clean.path, 0.0)
        video = Photo(user_id=user.id, kind="video", width=info.width, height=info.height,
                      mode=prompt.mode, prompt=prompt.prompt, duration_s=info.duration_s,
                      fps=info.fps, frame_count=info.frame_count, codec=info.codec[:16])

        def put_files(store: Any, prefix: str) -> None:
            store.put_file(prefix + clip_name(clean.path.suffix), clean.path)
            store.put(prefix + POSTER, poster)
            store.put(prefix + THUMB, thumbnail_jpeg(poster))

        job = Job(photo=video, kind="video", params=json.dumps(params))
        save_with_files(video, job, put_files)
    current_app.extensions["job_queue"].enqueue(job.id)
    log.info("queued video job %s for video %s (%s, %d frames, %.1f s)", job.id, video.id,
             prompt.mode, info.frame_count, info.duration_s)
    return video, job


def overlay_size(video: Photo) -> tuple[int, int]:
    """(width, height) in pixels of a video's overlay and of its JSON's masks and boxes: its
    frames as displayed, scaled down to ``models.video.output.RESULT_SIDE`` on the long side
    and made even, as the worker draws them (``models.video.io.fit_size``)."""
    from models.video.io import fit_size
    from models.video.output import RESULT_SIDE

    return fit_size(video.width, video.height, RESULT_SIDE, even=True)


def own_video_or_404(video_id: int) -> Photo:
    """Return the current user's video ``video_id``; 404 if missing, a photo, or anyone
    else's."""
    video = db.session.get(Photo, video_id)
    if video is None or video.user_id != current_user.id or not video.is_video:
        abort(404)
    return video
