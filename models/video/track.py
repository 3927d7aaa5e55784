"""Following objects through a clip: which frames the tracker sees, the walk through the clip
(back from the chosen frame, then forward to the end), and the masks of the frames between.

The tracker (:class:`MaskTracker`: SAM 2's video model in ``models.video.sam2``, or a
stand-in in the tests) sees only the *processed* frames, ``fps`` per second of video
(:func:`plan_frames`). Every other frame is *carried*: it gets the mask of the nearer
processed frame, moved and scaled so that its box is the linear interpolation, by time,
of the two processed frames' boxes (:func:`carry`). Under a camera pan or zoom an object's
box moves and scales in exactly this way (an affine map per frame); for motion within
1/``fps`` s that is not linear, the error is the motion's departure from a straight line.
An object the tracker reports absent (SAM 2's object score <= 0: it left the frame or is
hidden) has no mask on that frame; a carried frame next to an absent one takes the state of
the nearer processed frame.

Frames are decoded twice (:func:`models.video.io.iter_frames`), never all held: the first
pass stops at the chosen frame, keeping the processed frames before it at tracking size
(~0.4 MB each at 512 px) to walk them backwards; the second pass hands each frame with its
masks to ``emit`` in order, holding only the carried frames since the last processed one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from models.errors import BadPromptError
from models.segment.mask import Mask, tight
from models.video.io import Frame, fit_size, iter_frames

log = logging.getLogger(__name__)

Masks = dict[int, Mask | None]  # object id -> its mask on a frame, None when absent


@dataclass(frozen=True)
class ObjectPrompt:
    """What marks one object on the chosen frame: exactly one of a point prompt (x, y), a
    box (x0, y0, x1, y1) or a mask ((H, W) bool), in pixels of the image it is given with."""

    object_id: int
    point: tuple[float, float] | None = None
    box: tuple[float, float, float, float] | None = None
    mask: np.ndarray | None = None

    def scaled(self, sx: float, sy: float, size: tuple[int, int]) -> ObjectPrompt:
        """The prompt in an image scaled by (sx, sy) to ``size`` (W, H)."""
        point = None if self.point is None else (self.point[0] * sx, self.point[1] * sy)
        box = None if self.box is None else (self.box[0] * sx, self.box[1] * sy,
                                             self.box[2] * sx, self.box[3] * sy)  # fmt: skip
        mask = None
        if self.mask is not None:
            mask = cv2.resize(np.asarray(self.mask, dtype=np.uint8), size,
                              interpolation=cv2.INTER_NEAREST).astype(bool)  # fmt: skip
        return ObjectPrompt(self.object_id, point, box, mask)


@dataclass(frozen=True)
class TrackStep:
    """The tracker's answer for one frame.

    Attributes:
        logits: (N, h, w) float32 mask logits (> 0: the object), one per object in prompt
            order, covering the whole frame at any resolution (stretched to it).
        present: (N,) bool; False where the tracker finds the object gone from the frame.
    """

    logits: np.ndarray
    present: np.ndarray


class MaskTracker(Protocol):
    """Follows prompted objects through frames handed in processing order."""

    def start(self, image: np.ndarray, prompts: Sequence[ObjectPrompt]) -> TrackStep:
        """Forget any earlier walk; the objects' masks on ``image`` ((H, W, 3) uint8 RGB)."""
        ...

    def track(self, image: np.ndarray) -> TrackStep:
        """The objects' masks on the next processed frame (same size as ``start``'s)."""
        ...


def frame_times(path: Path) -> list[float]:
    """Every frame's time in seconds from the first, in presentation order, from the video
    packets' timestamps (no decoding). Packets without a timestamp are left out.

    Raises:
        VideoError: the file cannot be read as a clip.
    """
    from models.video.io import _open, _video_stream

    with _open(path) as container:
        stream = _video_stream(container)
        pts = sorted(p.pts for p in container.demux(stream) if p.pts is not None)
        if not pts or stream.time_base is None:
            return []
        return [float((v - pts[0]) * stream.time_base) for v in pts]


def plan_frames(times: Sequence[float], prompt_index: int, fps: float) -> list[int]:
    """Indices of the frames the tracker sees, in clip order.

    The chosen frame, then walking away from it both ways, the first frame at or past each
    further 1/``fps`` s (by timestamp, so a variable frame rate keeps the rate per second),
    and the clip's first and last frames (so every carried frame lies between two processed
    ones). A frame less than half a source frame short of a slot counts as reaching it.

    Args:
        times: frame times in seconds, non-decreasing (:func:`frame_times`).
        prompt_index: the chosen frame, 0 <= prompt_index < len(times).
        fps: processed frames per second of video, > 0.

    Raises:
        ValueError: ``prompt_index`` outside the clip, or ``fps`` not positive.
    """
    count = len(times)
    if not 0 <= prompt_index < count:
        raise ValueError(f"frame {prompt_index} is outside a clip of {count} frames")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    step = 1.0 / fps
    half = 0.5 * (times[-1] - times[0]) / max(1, count - 1)
    chosen = {0, prompt_index, count - 1}
    anchor = times[prompt_index]
    for i in range(prompt_index + 1, count):
        if times[i] >= anchor + step - half:
            chosen.add(i)
            anchor = times[i]
    anchor = times[prompt_index]
    for i in range(prompt_index - 1, -1, -1):
        if times[i] <= anchor - step + half:
            chosen.add(i)
            anchor = times[i]
    return sorted(chosen)


def masks_of(step: TrackStep, ids: Sequence[int], size: tuple[int, int]) -> Masks:
    """The tracker's logits as masks of ``size`` (W, H): bilinear upsampling, logit > 0
    (as transformers' ``post_process_masks``); an absent object, or an empty mask, is None."""
    import torch

    width, height = size
    logits = torch.from_numpy(np.ascontiguousarray(step.logits, dtype=np.float32))[:, None]
    if tuple(logits.shape[-2:]) != (height, width):
        logits = torch.nn.functional.interpolate(logits, size=(height, width), mode="bilinear",
                                                 align_corners=False)  # fmt: skip
    inside = (logits[:, 0] > 0).numpy()
    out: Masks = {}
    for i, object_id in enumerate(ids):
        mask = Mask.from_array(inside[i]) if step.present[i] else None
        out[object_id] = mask if mask is not None and mask.area > 0 else None
    return out


def warp_to_box(mask: Mask, box: Sequence[float]) -> Mask | None:
    """``mask`` moved and scaled (nearest neighbour) so its tight box becomes ``box`` (x0, y0,
    x1, y1, px, rounded to whole pixels), clipped to the frame; None if nothing is left."""
    height, width = mask.shape
    x0, y0 = int(round(box[0])), int(round(box[1]))
    w, h = max(1, int(round(box[2])) - x0), max(1, int(round(box[3])) - y0)
    crop = mask.crop
    if crop.size == 0:
        return None
    region = cv2.resize(crop.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
    left, top = max(0, x0), max(0, y0)
    right, bottom = min(width, x0 + w), min(height, y0 + h)
    if right <= left or bottom <= top:
        return None
    placed = tight(region[top - y0 : bottom - y0, left - x0 : right - x0], top, left,
                   (height, width))  # fmt: skip
    return placed if placed.area > 0 else None


def carry(before: Mask | None, after: Mask | None, t: float) -> Mask | None:
    """An object's mask on a frame a fraction ``t`` (0-1) of the way in time from a processed
    frame (mask ``before``) to the next (``after``): the nearer one's mask warped to the
    linearly interpolated box; the nearer one's state when either is absent."""
    if before is None or after is None:
        return before if t < 0.5 else after
    b0, b1 = np.array(before.box), np.array(after.box)
    box = (1.0 - t) * b0 + t * b1
    return warp_to_box(before if t < 0.5 else after, box)


@dataclass
class TrackStats:
    """What a walk through a clip took: frames, processed frames, seconds per stage."""

    frames: int = 0
    processed: int = 0
    first_masks_s: float = 0.0
    timings: dict[str, float] | None = None


def track_clip(
    path: Path,
    tracker: MaskTracker,
    *,
    prompt_index: int,
    find_prompts: Callable[[np.ndarray], list[ObjectPrompt]],
    result_size: tuple[int, int],
    track_side: int,
    fps: float,
    emit: Callable[[Frame, Masks], None],
    on_start: Callable[[np.ndarray, Masks], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> TrackStats:
    """Follow objects through the clip at ``path`` and hand every frame, in order, with its
    masks to ``emit``.

    Args:
        tracker: the :class:`MaskTracker`.
        prompt_index: the chosen frame (0-based) the objects are marked on.
        find_prompts: called once with the chosen frame ((H, W, 3) uint8 RGB at
            ``result_size``); returns the objects' prompts in its pixels (object ids are
            the caller's). An empty list raises BadPromptError.
        result_size: (W, H) of the frames and masks handed to ``emit`` (the clip's displayed
            size, or smaller; see :func:`models.video.io.fit_size`).
        track_side: long side of the frames the tracker sees, px.
        fps: processed frames per second of video (:func:`plan_frames`).
        emit: called as ``emit(frame, masks)`` for each frame (its image at ``result_size``),
            masks keyed by object id, None where absent.
        on_start: called once with the chosen frame and its masks, as soon as they exist
            (the first masks a person sees).
        progress: called as ``progress(done, total)`` after each processed frame.

    Returns:
        :class:`TrackStats`.

    Raises:
        BadPromptError: ``prompt_index`` is outside the clip, or no object to follow.
        VideoError: the clip cannot be decoded.
    """
    started = time.perf_counter()
    timings = {"decode": 0.0, "track": 0.0, "emit": 0.0}
    times = frame_times(path)
    if not 0 <= prompt_index < len(times):
        raise BadPromptError(
            f"The chosen frame ({prompt_index + 1}) is not in the clip "
            f"({len(times)} frames)."
        )
    plan = plan_frames(times, prompt_index, fps)
    processed = set(plan)
    total = len(plan)
    done = 0
    track_size = fit_size(*result_size, track_side)
    sx, sy = track_size[0] / result_size[0], track_size[1] / result_size[1]

    def small(image: np.ndarray) -> np.ndarray:
        if image.shape[1::-1] == track_size:
            return image
        return cv2.resize(image, track_size, interpolation=cv2.INTER_AREA)

    def step(run: Callable[[], TrackStep]) -> Masks:
        nonlocal done
        t0 = time.perf_counter()
        masks = masks_of(run(), ids, result_size)
        timings["track"] += time.perf_counter() - t0
        done += 1
        if progress is not None:
            progress(done, total)
        return masks

    # Pass 1: up to the chosen frame, keeping the processed frames before it, small.
    before: dict[int, np.ndarray] = {}
    chosen: Frame | None = None
    for frame in _timed(iter_frames(path, size=result_size), timings):
        if frame.index == prompt_index:
            chosen = frame
            break
        if frame.index in processed:
            before[frame.index] = small(frame.image)
    if chosen is None:
        raise BadPromptError(f"The chosen frame ({prompt_index + 1}) could not be decoded.")
    t0 = time.perf_counter()
    prompts = find_prompts(chosen.image)
    timings["objects"] = time.perf_counter() - t0
    if not prompts:
        raise BadPromptError("No object to follow was found on the chosen frame.")
    ids = [p.object_id for p in prompts]
    small_prompts = [p.scaled(sx, sy, track_size) for p in prompts]
    chosen_small = small(chosen.image)
    masks: dict[int, Masks] = {prompt_index: step(lambda: tracker.start(chosen_small,
                                                                        small_prompts))}
    first_masks_s = time.perf_counter() - started
    if on_start is not None:
        on_start(chosen.image, masks[prompt_index])
    # Backwards from the chosen frame.
    for index in sorted(before, reverse=True):
        image = before.pop(index)
        masks[index] = step(lambda image=image: tracker.track(image))
    if prompt_index > 0:
        tracker.start(chosen_small, small_prompts)  # a fresh walk forwards from the chosen frame
    # Pass 2: every frame in order; processed frames past the chosen one are tracked.
    pending: list[Frame] = []
    last: int | None = None
    frames = 0
    for frame in _timed(iter_frames(path, size=result_size), timings):
        frames += 1
        if frame.index not in processed:
            pending.append(frame)
            continue
        if frame.index > prompt_index:
            masks[frame.index] = step(lambda frame=frame: tracker.track(small(frame.image)))
        current = masks[frame.index]
        t1 = time.perf_counter()
        if last is not None:
            _emit_carried(pending, times, last, frame.index, masks[last], current, emit)
        pending.clear()
        emit(frame, current)
        timings["emit"] += time.perf_counter() - t1
        if last is not None:
            del masks[last]
        last = frame.index
    for frame in pending:  # only if the decoder gave more frames than the packets said
        emit(frame, masks[last] if last is not None else {})
    timings["total"] = time.perf_counter() - started
    return TrackStats(frames=frames, processed=done, first_masks_s=first_masks_s,
                      timings=timings)  # fmt: skip


def _timed(frames: Iterator[Frame], timings: dict[str, float]) -> Iterator[Frame]:
    """``frames``, adding the seconds spent decoding each to ``timings["decode"]``."""
    while True:
        t0 = time.perf_counter()
        frame = next(frames, None)
        timings["decode"] += time.perf_counter() - t0
        if frame is None:
            return
        yield frame


def _emit_carried(
    pending: list[Frame], times: Sequence[float], last: int, index: int, before: Masks,
    after: Masks, emit: Callable[[Frame, Masks], None],
) -> None:  # fmt: skip
    """Emit the carried frames between processed frames ``last`` and ``index``."""
    span = times[index] - times[last]
    for frame in pending:
        t = (frame.time_s - times[last]) / span if span > 0 else 0.0
        t = min(1.0, max(0.0, t))
        emit(frame, {oid: carry(before.get(oid), after.get(oid), t) for oid in after})
