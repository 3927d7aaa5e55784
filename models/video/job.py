"""The "video" job: find the objects on the chosen frame, follow them through the clip, write
the overlay video and the JSON, and hand them to the job source.

Called by ``models.worker.process_one`` for jobs of kind "video". The job source's hooks:
    progress(job_id, fraction, stage): stage "Tracking: frame 12 of 50" (processed frames);
    video_frames(job_id, done, total) (optional): the same two numbers, for the page's
        "Frame 12 of 50";
    video_preview(job_id, png) (optional): the chosen frame with its first masks, as soon
        as they exist (everything and grounded modes also show MobileSAM's masks before
        the names, as photos do);
    complete_video(job_id, result, overlay_mp4_path, result_json_bytes, poster_jpeg):
        store the result; the MP4 is a temporary file, deleted after the call returns;
    fail(job_id, reason): a failed job, with a sentence a person can read.
"""

from __future__ import annotations

import logging
import queue
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from models.errors import BadPromptError, ModelError
from models.render.palette import color_for
from models.result import UNSURE_LABEL, ObjectResult
from models.runtime.scratch import scratch_dir
from models.video.errors import VideoError
from models.video.io import MAX_VIDEO_S, Frame, fit_size, probe_video
from models.video.output import (
    RESULT_SIDE,
    OverlayWriter,
    VideoObject,
    VideoResult,
    draw_frame,
    frame_entries,
    jpeg,
    preview_png,
)
from models.video.track import Masks, ObjectPrompt, track_clip

if TYPE_CHECKING:
    from models.service import InferenceService
    from models.worker import JobRequest

log = logging.getLogger(__name__)

#: Most objects followed through one clip ("Find everything": the largest named ones).
MAX_OBJECTS = 8
#: Progress fractions: finding the objects, then tracking and drawing, then storing.
FIND_SHARE, TRACK_SHARE = 0.1, 0.95
Report = Callable[[float, str], None]


def video_points(params: dict[str, Any], frame: int) -> list[tuple[float, float]]:
    """Tapped points of a "point" video job: ``params["points"]`` as [[x, y], ...] or
    [[frame, x, y], ...] (displayed-clip pixels), all on the chosen ``frame``.

    Raises:
        BadPromptError: no points, points not numbers, more than ``MAX_OBJECTS``, or points
            on another frame than the chosen one.
    """
    raw = params.get("points")
    if not isinstance(raw, list) or not raw:
        raise BadPromptError("Tap the objects to follow on the video first.")
    if len(raw) > MAX_OBJECTS:
        raise BadPromptError(f"At most {MAX_OBJECTS} objects can be followed in one video.")
    points = []
    for item in raw:
        try:
            values = [float(v) for v in item]
        except (TypeError, ValueError) as exc:
            raise BadPromptError("A tap did not say where on the video it was.") from exc
        if len(values) == 3:
            if int(values[0]) != frame:
                raise BadPromptError("All taps must be on the same frame of the video.")
            values = values[1:]
        if len(values) != 2 or not all(np.isfinite(values)):
            raise BadPromptError("A tap did not say where on the video it was.")
        points.append((values[0], values[1]))
    return points


def prompt_frame_of(params: dict[str, Any]) -> int:
    """The chosen frame (0-based): ``params["frame"]``, else the first point's frame, else 0.

    Raises:
        BadPromptError: not a whole number >= 0.
    """
    value = params.get("frame")
    points = params.get("points")
    if value is None and isinstance(points, list) and points and isinstance(points[0], list) \
            and len(points[0]) == 3:  # fmt: skip
        value = points[0][0]
    try:
        frame = int(value or 0)
    except (TypeError, ValueError) as exc:
        raise BadPromptError("The chosen frame of the video is not a frame number.") from exc
    if frame < 0:
        raise BadPromptError("The chosen frame of the video is not a frame number.")
    return frame


def pick_objects(found: list[ObjectResult], mode: str) -> list[ObjectResult]:
    """The objects to follow from a photo analysis of the chosen frame: grounded mode's
    detections, highest score first; everything mode's largest *named* objects (all the
    largest when none is named), at most ``MAX_OBJECTS``."""
    if mode == "everything":
        named = [o for o in found if o.named]
        found = sorted(named or found, key=lambda o: o.area, reverse=True)
    return found[:MAX_OBJECTS]


def run_video_job(job: JobRequest, service: InferenceService, source: Any,
                  report: Report) -> VideoResult:  # fmt: skip
    """Run one video job and hand its result to ``source.complete_video``.

    Raises:
        ModelError (VideoError, BadPromptError, weights errors): a reason for the person.
        Any other exception: a fault (the caller logs it and fails the job).
    """
    started = time.perf_counter()
    path = job.video_path
    if path is None:
        raise VideoError("The video file of this job is missing.")
    params = job.params or {}
    info = probe_video(Path(path), max_duration_s=float(params.get("max_duration_s",
                                                                   MAX_VIDEO_S)))  # fmt: skip
    result_size = fit_size(info.width, info.height, RESULT_SIDE, even=True)
    scale = result_size[0] / info.width
    mode = job.mode
    prompt_index = prompt_frame_of(params)
    points = video_points(params, prompt_index) if mode == "point" else []
    if mode not in ("point", "everything", "grounded"):
        raise BadPromptError(f"Unknown way of choosing objects: {mode!r}.")
    if mode == "grounded" and not job.phrases:
        raise BadPromptError('Please type what to look for, for example "cat, ball".')
    for x, y in points:
        if not (0 <= x < info.width and 0 <= y < info.height):
            raise BadPromptError("A tap was outside the video.")
    report(0.02, "loading the video model")
    from models.runtime.precision import autocast_dtype
    from models.video.sam2 import Sam2Tracker

    config = service.config
    tracker = Sam2Tracker(service.video_model(), autocast_dtype(config.precision, config.device))
    objects: dict[int, VideoObject] = {}
    preview = getattr(source, "video_preview", None)
    frames = getattr(source, "video_frames", None)

    def show(png: bytes) -> None:
        if preview is None:
            return
        try:
            preview(job.job_id, png)
        except Exception:  # a missed preview must not lose the job
            log.warning("job %s: preview not shown", job.job_id, exc_info=True)

    def find_prompts(image: np.ndarray) -> list[ObjectPrompt]:
        report(0.04, "finding the objects")
        if mode == "point":
            for i, _ in enumerate(points):
                objects[i + 1] = VideoObject(i + 1, UNSURE_LABEL, False, color_for(i))
            return [ObjectPrompt(i + 1, point=(x * scale, y * scale))
                    for i, (x, y) in enumerate(points)]  # fmt: skip

        def early(found: list[ObjectResult]) -> None:
            from models.render.overlay import encode_png, render_preview

            show(encode_png(render_preview(Image.fromarray(image), found)))

        analysis = service.analyze(
            Image.fromarray(image), mode, job.phrases,
            progress=lambda f, s: report(0.04 + 0.06 * f, s) if f < 1 else None,
            preview=early if preview is not None else None,
        )  # fmt: skip
        chosen = pick_objects(analysis.objects, mode)
        for i, obj in enumerate(chosen):
            objects[i + 1] = VideoObject(i + 1, obj.label, bool(obj.named), color_for(i),
                                         obj.color_name, float(obj.score))  # fmt: skip
        return [ObjectPrompt(i + 1, mask=np.asarray(obj.mask)) for i, obj in enumerate(chosen)]

    first_masks: list[float] = []

    def on_start(image: np.ndarray, masks: Masks) -> None:
        first_masks.append(time.perf_counter() - started)
        show(preview_png(image, masks, objects))
        if mode == "point":
            _name_taps(service, image, masks, objects)

    workdir = scratch_dir("video")
    try:
        overlay_path = workdir / "overlay.mp4"
        with OverlayWriter(overlay_path, result_size, info.fps) as writer:
            sink = FrameSink(writer, objects)

            def progress(done: int, total: int) -> None:
                fraction = FIND_SHARE + (TRACK_SHARE - FIND_SHARE) * done / total
                report(fraction, f"Tracking: frame {done} of {total}")
                if frames is not None:
                    try:
                        frames(job.job_id, done, total)
                    except Exception:  # a missed count must not lose the job
                        log.warning("job %s: frame count update failed", job.job_id,
                                    exc_info=True)

            try:
                stats = track_clip(
                    Path(path), tracker, prompt_index=prompt_index, find_prompts=find_prompts,
                    result_size=result_size, track_side=tracker.size,
                    fps=service.config.video_fps, emit=sink.put, on_start=on_start,
                    progress=progress,
                )  # fmt: skip
            finally:
                sink.close()
            frames, posters = sink.entries, sink.posters
        weights = {"sam2_video": service.weights.get("sam2_video", "unverified")}
        for name in ("mobile_sam", "grounding_dino"):
            if mode != "point" and name in service.weights:
                weights[name] = service.weights[name]
        timings = {k: round(v, 3) for k, v in (stats.timings or {}).items()}
        timings["first_masks"] = round(first_masks[0], 3) if first_masks else 0.0
        timings["total"] = round(time.perf_counter() - started, 3)
        result = VideoResult(
            width=result_size[0], height=result_size[1], fps=info.fps,
            duration_s=info.duration_s, frame_count=len(frames),
            processed_fps=service.config.video_fps, mode=mode,
            prompt=", ".join(job.phrases) if mode == "grounded" and job.phrases else None,
            prompt_frame=prompt_index, objects=list(objects.values()), frames=frames,
            weights=weights, timings=timings,
        )  # fmt: skip
        report(TRACK_SHARE, "saving the video")
        source.complete_video(job.job_id, result, overlay_path, result.json_bytes(),
                              posters[0] if posters else b"")  # fmt: skip
        log.info("job %s: video of %d frames, %d processed, %d objects in %.1f s %s",
                 job.job_id, stats.frames, stats.processed, len(objects), timings["total"],
                 timings)  # fmt: skip
        return result
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


class FrameSink:
    """Draws each frame (:func:`~models.video.output.draw_frame`), encodes it into the overlay
    and records its JSON entry on a thread of its own, at most ``depth`` frames behind
    :meth:`put`, so drawing and H.264 encoding (~60 ms a 720p frame here) overlap the
    tracker's steps instead of adding to them. Memory: ``depth`` frames.

    Attributes:
        entries: the frames' JSON entries, in order (complete after :meth:`close`).
        posters: the first drawn frame as JPEG (one item once a frame was drawn).
    """

    def __init__(self, writer: OverlayWriter, objects: dict[int, VideoObject],
                 depth: int = 4) -> None:  # fmt: skip
        self.writer, self.objects = writer, objects
        self.entries: list[dict[str, Any]] = []
        self.posters: list[bytes] = []
        self._queue: queue.Queue[tuple[Frame, Masks] | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="video-frames", daemon=True)
        self._thread.start()

    def put(self, frame: Frame, masks: Masks) -> None:
        """Queue one frame with its masks (blocks while ``depth`` frames wait).

        Raises:
            Exception: the error that stopped the drawing thread, if any.
        """
        if self._error is not None:
            raise self._error
        self._queue.put((frame, masks))

    def close(self) -> None:
        """Wait for every queued frame to be written.

        Raises:
            Exception: the error that stopped the drawing thread, if any.
        """
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is not None:
                continue  # drain, so put() never blocks after a failure
            frame, masks = item
            try:
                drawn = draw_frame(frame.image, masks, self.objects)
                self.writer.write(drawn, frame.time_s)
                self.entries.append(frame_entries(frame, masks, self.objects))
                if not self.posters:
                    self.posters.append(jpeg(drawn))
            except BaseException as exc:  # handed to the job's thread by put()/close()
                self._error = exc


def _name_taps(service: InferenceService, image: np.ndarray, masks: Masks,
               objects: dict[int, VideoObject]) -> None:  # fmt: skip
    """Name the tapped objects from their first masks (vocabulary detections on the chosen
    frame) and find their main colours. A naming failure leaves them "something?"."""
    from models.service import name_colors

    present = [(oid, m) for oid, m in masks.items() if m is not None]
    if not present:
        return
    photo = Image.fromarray(image)
    try:
        names = service.name_masks(photo, [m.box for _, m in present])
    except ModelError:
        log.warning("tapped objects not named", exc_info=True)
        return
    results = []
    for (oid, mask), name in zip(present, names, strict=True):
        objects[oid].label, objects[oid].named = name.label, bool(name.named)
        results.append(ObjectResult(label=name.label, score=1.0, box=mask.box, mask=mask,
                                    area=mask.area, color=objects[oid].color))  # fmt: skip
    name_colors(photo, results)
    for (oid, _), obj in zip(present, results, strict=True):
        objects[oid].color_name = obj.color_name
