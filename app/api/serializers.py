"""The API's JSON views of photos, jobs, re-prompt results and word lists, and its error
response: one place for each shape (``docs/api.md``)."""

from __future__ import annotations

import json
from typing import Any

from flask import Response, jsonify, url_for

from app.db import Job, Photo
from app.files import PREVIEW, file_url, photo_urls, video_file_url, video_urls
from app.photos.service import photo_weights
from models.result import is_named


def error(status: int, message: str, retry_after: int | None = None) -> tuple[Response, int]:
    """The JSON error response ``{"error": message}`` with ``status`` (and ``Retry-After``
    in seconds when given)."""
    response = jsonify(error=message)
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response, status


def serialize_photo(photo: Photo) -> dict[str, Any]:
    """A photo: id, kind "photo", size (px), mode, prompt, status, readable error, created
    (UTC ISO 8601), favourite, its analysis job's id, the weights that made it, its objects
    (label, named, color_name, description, score 0-1, box xyxy px, area px, tint
    ``#rrggbb``) and its URLs."""
    return {
        "id": photo.id, "kind": "photo", "width": photo.width, "height": photo.height,
        "mode": photo.mode, "prompt": photo.prompt, "status": photo.status, "error": photo.error,
        "created_at": photo.created_at.isoformat() + "Z", "favourite": photo.favourite,
        "job_id": photo.job.id if photo.job else None,
        "weights": photo_weights(photo), "objects": _objects(photo), **photo_urls(photo),
    }


def _objects(photo: Photo) -> list[dict[str, Any]]:
    """A photo's or video's objects: label, named, color_name, description, score 0-1, box
    xyxy px, area px, tint ``#rrggbb``."""
    return [{"label": o.label, "named": o.named, "color_name": o.color_name,
             "description": o.description, "score": round(o.score, 4),
             "box": o.box, "area": o.area, "color": o.color} for o in photo.objects]


def serialize_video(video: Photo) -> dict[str, Any]:
    """A video: id, kind "video", frame size (px, as displayed), the overlay's size (px: the
    frames scaled to at most 1920 px long; the objects' boxes and the JSON's masks are in its
    pixels), duration (s), frame rate (frames per second), frame count, codec, mode
    (point|grounded|everything), prompt, status, readable error, created (UTC ISO 8601),
    favourite, its job's id, the weights that made it, its objects (as a photo's; box and area
    on the frame the prompt was on, or the first frame the object is in) and its URLs (clip,
    poster, thumbnail, page; once done: overlay video, its poster, the JSON)."""
    from app.videos.service import overlay_size

    width, height = overlay_size(video)
    return {
        "id": video.id, "kind": "video", "width": video.width, "height": video.height,
        "overlay_width": width, "overlay_height": height,
        "duration_s": video.duration_s, "fps": video.fps, "frame_count": video.frame_count,
        "codec": video.codec, "mode": video.mode, "prompt": video.prompt,
        "status": video.status, "error": video.error,
        "created_at": video.created_at.isoformat() + "Z", "favourite": video.favourite,
        "job_id": video.job.id if video.job else None, "weights": photo_weights(video),
        "objects": _objects(video), **video_urls(video),
    }


def serialize_job(job: Job) -> dict[str, Any]:
    """A job: id, photo id (a video's id for a "video" job, also as ``video_id``), kind,
    status, readable error, progress 0-1, stage, ``frames_done`` and ``frames_total`` (a video
    job's frames tracked so far and in all, once tracking has started; else None), and
    ``preview_url``: while an analysis runs and its worker stored a first picture (everything
    mode's masks before their names; a video's first frames' masks), its URL; else None."""
    preview = None
    if job.kind in ("analyse", "video") and job.status == "running" and job.preview:
        preview = (video_file_url if job.kind == "video" else file_url)(job.photo_id, PREVIEW)
    view = {"job_id": job.id, "photo_id": job.photo_id, "kind": job.kind,
            "status": job.status, "error": job.error, "progress": round(job.progress or 0.0, 3),
            "stage": job.stage, "preview_url": preview,
            "frames_done": job.frames_done, "frames_total": job.frames_total}
    if job.kind == "video":
        view["video_id"] = job.photo_id
    return view


def _named(obj: dict[str, Any]) -> dict[str, Any]:
    """An object of a stored result with its ``named`` flag (derived from the label for
    results stored before the flag, ``models.result.is_named``)."""
    return {**obj, "named": is_named(obj.get("label"), obj.get("named"))}


def serialize_reprompt(job: Job) -> dict[str, Any]:
    """A finished re-prompt job's result.

    "point": ``x``, ``y`` (photo px), ``object`` (label, named, score, box xyxy px, area px,
    colour, COCO RLE mask) or None, and ``cutout_url`` (PNG, alpha outside the mask).
    "words": ``prompt``, ``objects`` (as a photo's, with masks) and ``overlay_url`` (JPEG).
    Both: job id, photo id, kind, status, weights.
    """
    params = json.loads(job.params or "{}")
    result = json.loads(job.result or "{}")
    objects = [_named(o) for o in result.get("objects") or []]
    picture = url_for("api.words_overlay" if job.kind == "words" else "api.cutout",
                      job_id=job.id)
    view: dict[str, Any] = {"job_id": job.id, "photo_id": job.photo_id, "kind": job.kind,
                            "status": job.status,
                            "weights": result.get("weights") or photo_weights(job.photo)}
    if job.kind == "words":
        view.update(prompt=params.get("prompt"), objects=objects, overlay_url=picture)
    else:
        obj = objects[0] if objects else None
        view.update(x=params.get("x"), y=params.get("y"), object=obj,
                    cutout_url=picture if obj else None)
    return view


def serialize_words(photo: Photo) -> list[dict[str, Any]]:
    """The photo's word list: ``[{"id", "word"}]`` in the order they were added."""
    return [{"id": w.id, "word": w.word} for w in photo.words]
