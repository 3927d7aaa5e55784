"""Worker loop: claim a job, analyse the photo, render the overlay, report the outcome.

The queue is abstract (:class:`JobSource`); the web app implements it on its database
(``app.queue.database.DatabaseJobSource``), tests with an in-memory fake.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from PIL import Image

from models.errors import BadPromptError, ModelError
from models.runtime.allocator import release_memory

if TYPE_CHECKING:
    from models.result import AnalysisResult
    from models.service import InferenceService

log = logging.getLogger(__name__)

ANALYSIS_SHARE = 0.9  # progress fraction reached when analysis ends and drawing starts


@dataclass
class JobRequest:
    """One queued analysis.

    Attributes:
        job_id: the queue's id of the job.
        image: the photo, RGB.
        mode: "everything" or "grounded".
        phrases: grounded mode's phrases (parsed when the photo was uploaded), else None; a
            "words" re-prompt's too.
        key: cache key of the photo (e.g. "photo-12-9f86d081884c7d65": id and content hash),
            for its image embedding, detector features and names.
        kind: "analyse" (the photo's own analysis), or a re-prompt on the cached embedding:
            "point" (params {"x", "y"} photo pixels) or "words" (its ``phrases``).
        params: a point re-prompt's ``{"x", "y"}``; a "video" job's ``{"frame": chosen
            frame, "points": [[x, y], ...] or [[frame, x, y], ...]}`` (see
            ``models.video.job``).
        video_path: a "video" job's clip, a local file (``image`` is then None and
            ``mode`` is "point", "everything" or "grounded").
    """

    job_id: str
    image: Image.Image | None
    mode: str
    phrases: list[str] | None
    key: str
    kind: str = "analyse"
    params: dict[str, Any] = field(default_factory=dict)
    video_path: Path | None = None


class JobSource(Protocol):
    """The queue as the worker sees it."""

    def claim(self) -> JobRequest | None:
        """Next queued job, atomically marked running, or None."""
        ...

    def progress(self, job_id: str, fraction: float, stage: str) -> None:
        """Record progress (0-1) and a stage name."""
        ...

    def complete(self, job_id: str, result: AnalysisResult, picture: bytes) -> None:
        """Store the result and its picture (the overlay JPEG of an "analyse" or "words" job,
        the cut-out PNG of a "point" job); mark the job done."""
        ...

    def fail(self, job_id: str, reason: str) -> None:
        """Mark the job failed with a reason a person can read."""
        ...

    # Optional: ``preview(job_id, png)`` stores a first picture of a running everything-mode
    # job (its masks, before the names; see :func:`process_one`). Sources without it get none.
    # Video jobs (kind "video"): ``complete_video(job_id, result, overlay_mp4_path, json_bytes,
    # poster_jpeg)`` and optional ``video_preview(job_id, png)``; see ``models.video.job``.
    # Optional: ``live_keys(keys) -> set[str]``, the cache keys among ``keys`` whose photo still
    # exists; on each claim the service forgets the others (a deleted photo's embedding,
    # features and names). Sources without it keep the service's caches as they are.


def process_one(source: JobSource, service: InferenceService) -> bool:
    """Claim and handle one job.

    Returns:
        True if a job was claimed (whatever its outcome), False if the queue was empty.

    Progress goes 0-0.9 during analysis, 0.9 while drawing; ``complete(job_id, result,
    picture)`` means 1.0 (the picture: :func:`_run_job`'s JPEG overlay or PNG cut-out). An
    everything-mode analysis whose source has ``preview(job_id, png)`` hands it a PNG of the
    masks at screen size (``models.render.overlay.render_preview``) as soon as they exist, while
    the vocabulary pass still names them; a failed preview is logged only.

    Never raises for a job: a ``ModelError`` becomes ``source.fail(job_id, str(e))``; any
    other exception is logged with its traceback and becomes ``source.fail(job_id,
    "Internal error while analysing the photo: <ExcType>: <msg>")``. Errors of ``claim``
    itself propagate (the queue is unusable; ``run_worker`` logs and retries).
    """
    job = source.claim()
    if job is None:
        return False
    log.info("job %s: %s (%s) of %s", job.job_id, job.kind, job.mode, job.key)
    forget_deleted(source, service)
    if job.kind == "video":
        _process_video(job, source, service)
        return True

    def report(fraction: float, stage: str) -> None:
        try:
            source.progress(job.job_id, fraction, stage)
        except Exception:  # a missed progress update must not lose the job
            log.warning("job %s: progress update failed", job.job_id, exc_info=True)

    def analysis_progress(fraction: float, stage: str) -> None:
        # The analysis is 0-90% of the job; its own "done" is not the job's (drawing follows).
        if fraction < 1.0:
            report(ANALYSIS_SHARE * max(0.0, fraction), stage)

    try:
        result, picture = _run_job(job, service, report, analysis_progress,
                                   getattr(source, "preview", None),
                                   getattr(source, "store_embedding", None))  # fmt: skip
    except ModelError as exc:
        log.info("job %s failed: %s", job.job_id, exc)
        _fail(source, job.job_id, str(exc))
        return True
    except Exception as exc:
        log.exception("job %s: unexpected error", job.job_id)
        _fail(
            source,
            job.job_id,
            f"Internal error while analysing the photo: {type(exc).__name__}: {exc}",
        )
        return True
    try:
        source.complete(job.job_id, result, picture)
    except Exception as exc:
        log.exception("job %s: could not store the result", job.job_id)
        _fail(source, job.job_id, f"The result could not be saved: {type(exc).__name__}: {exc}")
        return True
    log.info("job %s done: %d objects", job.job_id, len(result.objects))
    return True


def _process_video(job: JobRequest, source: JobSource, service: InferenceService) -> None:
    """Run a "video" job (``models.video.job.run_video_job``); never raises: a ``ModelError``
    (a refused clip, a bad prompt, missing weights) fails the job with its sentence, any
    other exception with "Internal error while tracking the video: <ExcType>: <msg>"."""

    def report(fraction: float, stage: str) -> None:
        try:
            source.progress(job.job_id, fraction, stage)
        except Exception:  # a missed progress update must not lose the job
            log.warning("job %s: progress update failed", job.job_id, exc_info=True)

    try:
        from models.video.job import run_video_job

        run_video_job(job, service, source, report)
    except ModelError as exc:
        log.info("job %s failed: %s", job.job_id, exc)
        _fail(source, job.job_id, str(exc))
    except Exception as exc:
        log.exception("job %s: unexpected error", job.job_id)
        _fail(source, job.job_id,
              f"Internal error while tracking the video: {type(exc).__name__}: {exc}")


def _run_job(
    job: JobRequest,
    service: InferenceService,
    report: Callable[[float, str], None],
    analysis_progress: Callable[[float, str], None],
    store_preview: Callable[[str, bytes], None] | None = None,
    store_embedding: Callable[[str, bytes], None] | None = None,
) -> tuple[AnalysisResult, bytes]:
    """Run one job by its kind and draw its picture; an everything-mode analysis hands
    ``store_preview(job_id, png)`` its masks' preview (drawing or storing it may fail: that
    is logged, the job goes on); an analysis hands ``store_embedding(job_id, data)`` the
    photo's image embedding for taps decoded by the page (logged too if it fails).

    Returns:
        (result, picture bytes): for "analyse" and "words", the overlay of the photo as a JPEG
        (``models.render.overlay.encode_jpeg``); for "point", the object's cut-out as a PNG
        (RGBA, its box, transparent outside the mask; 1x1 transparent when the mask is empty).

    Raises:
        ModelError: from the service, an unknown kind, or params that are not a point/prompt.
    """
    from models.render.overlay import (
        encode_jpeg,
        encode_png,
        render_cutout,
        render_overlay,
        render_preview,
    )
    from models.service import upright

    started = time.perf_counter()
    # The photo as the service analyses it (given an upright RGB photo, it uses it as is).
    photo = upright(job.image)
    if job.kind == "point":
        result = service.segment_point(
            photo, _point_of(job.params), key=job.key, progress=analysis_progress
        )
        report(ANALYSIS_SHARE, "cutting out")
        picture = encode_png(render_cutout(photo, result.objects[0]))
    elif job.kind in ("analyse", "words"):
        mode = "grounded" if job.kind == "words" else job.mode
        show = None
        if store_preview is not None and mode == "everything":

            def show(objects: list[Any]) -> None:
                try:
                    store_preview(job.job_id, encode_png(render_preview(photo, objects)))
                except Exception:  # a missed preview must not lose the job
                    log.warning("job %s: preview not shown", job.job_id, exc_info=True)

        result = service.analyze(photo, mode, job.phrases, key=job.key,
                                 progress=analysis_progress, preview=show,
                                 new_words=job.kind == "words")  # fmt: skip
        if store_embedding is not None and job.kind == "analyse":
            _store_embedding(job, service, photo, store_embedding)
        report(ANALYSIS_SHARE, "drawing the picture")
        overlay = render_overlay(photo, result.objects, scores=mode == "grounded")
        picture = encode_jpeg(overlay)
    else:
        raise ModelError(f"This server does not know jobs of kind {job.kind!r}.")
    result.timings["render"] = time.perf_counter() - started - result.timings["total"]
    return result, picture


def _store_embedding(
    job: JobRequest, service: InferenceService, photo: Image.Image,
    store: Callable[[str, bytes], None],
) -> None:
    """Hand ``store`` the analysed ``photo``'s image embedding (cached by the analysis under
    the job's key), so the page can decode taps itself. A failure is logged only: the page
    then sends taps to the worker, as it does without the file."""
    try:
        store(job.job_id, service.embedding_file(photo, key=job.key))
    except Exception:
        log.warning("job %s: image embedding not stored", job.job_id, exc_info=True)


def _point_of(params: dict[str, Any]) -> tuple[float, float]:
    """(x, y) photo pixels from a point job's params {"x": float, "y": float}.

    Raises:
        BadPromptError: missing or not numbers.
    """
    try:
        return float(params["x"]), float(params["y"])
    except (KeyError, TypeError, ValueError) as exc:
        raise BadPromptError("The tap did not say where on the photo it was.") from exc


def forget_deleted(source: JobSource, service: InferenceService) -> list[str]:
    """Make ``service`` forget what it caches for photos that ``source`` no longer has
    (``source.live_keys``; nothing happens for a source without it). A failure to ask is
    logged, not raised: the job goes on, and cache keys name one picture each, so a stale
    entry can only take memory until the next check or its LRU eviction.

    Returns:
        The keys forgotten.
    """
    check = getattr(source, "live_keys", None)
    if check is None:
        return []
    cached = service.cached_keys()
    if not cached:
        return []
    try:
        live = check(cached)
    except Exception:
        log.warning("could not check which cached photos still exist", exc_info=True)
        return []
    gone = sorted(cached - set(live))
    for key in gone:
        service.forget(key)
    if gone:
        log.info("forgot the cached data of deleted photos: %s", ", ".join(gone))
    return gone


def _fail(source: JobSource, job_id: str, reason: str) -> None:
    """``source.fail`` that logs instead of raising."""
    try:
        source.fail(job_id, reason)
    except Exception:
        log.exception("job %s: could not record the failure (%s)", job_id, reason)


def run_worker(
    source: JobSource,
    service: InferenceService,
    *,
    stop: threading.Event | None = None,
    poll_interval: float = 1.0,
    max_jobs: int | None = None,
) -> int:
    """Handle jobs until ``stop`` is set or ``max_jobs`` were handled.

    Waits ``poll_interval`` seconds (interruptibly) when the queue is empty or ``claim``
    fails. SIGTERM-friendly: the caller's signal handler sets ``stop``; the job in progress
    is finished first. Models are loaded lazily by the first job.

    Returns:
        The number of jobs handled.
    """
    stop = stop or threading.Event()
    handled = 0
    while not stop.is_set() and (max_jobs is None or handled < max_jobs):
        try:
            got_job = process_one(source, service)
        except Exception:
            log.exception("could not claim a job; retrying in %.1f s", poll_interval)
            got_job = False
        if got_job:
            handled += 1
            release_memory()
        else:
            stop.wait(poll_interval)
    log.info("worker stopping after %d job(s)", handled)
    return handled
