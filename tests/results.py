"""Synthetic analysis results: finished photos in milliseconds, with masks where a test wants
them (rectangles), for pages and taps that must not depend on random-weight models."""

from __future__ import annotations

import numpy as np

from app.queue.database import DatabaseJobSource
from models.render.overlay import encode_jpeg, render_overlay
from models.result import AnalysisResult, ObjectResult

#: The palette's first colours (models.render.palette), so synthetic objects look like real ones.
COLORS = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48)]


def rect_object(label: str, box: tuple[int, int, int, int], size: tuple[int, int],
                index: int = 0, **extra) -> ObjectResult:
    """An object whose mask is the rectangle ``box`` (xyxy px) of a photo of ``size`` (w, h);
    ``extra`` sets further attributes (e.g. ``named=False``)."""
    w, h = size
    mask = np.zeros((h, w), dtype=bool)
    x0, y0, x1, y1 = box
    mask[y0:y1, x0:x1] = True
    obj = ObjectResult(label=label, score=0.9 - 0.1 * index,
                       box=(float(x0), float(y0), float(x1 - 1), float(y1 - 1)), mask=mask,
                       area=int(mask.sum()), color=COLORS[index % len(COLORS)])
    for name, value in extra.items():
        setattr(obj, name, value)
    return obj


def finish_next_job(app, objects_for_size, mode: str = "everything",
                    prompt: str | None = None) -> str:
    """Claim the next queued job and complete it with ``objects_for_size((w, h))``; marked as
    made with unverified (test) weights, like every result in the tests. Returns the job id."""
    source = DatabaseJobSource(app)
    request = source.claim()
    assert request is not None, "no queued job"
    size = request.image.size
    objects = objects_for_size(size)
    source.complete(request.job_id, AnalysisResult(
        width=size[0], height=size[1], mode=mode, prompt=prompt, objects=objects,
        weights={"mobile_sam": "unverified"}), encode_jpeg(render_overlay(request.image, objects)))
    return request.job_id
