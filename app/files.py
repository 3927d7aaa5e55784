"""A library item's files in storage: their names, types and URLs.

Every photo's and video's files live under its storage prefix (``u<user>/p<id>/``,
:attr:`app.db.Photo.storage_prefix`) in the configured storage (``app.storage``), so deleting
the prefix deletes every file of the item.
"""

from __future__ import annotations

from flask import url_for

from app.db import Photo

ORIGINAL, OVERLAY, OBJECTS, THUMB = "original.jpg", "overlay.jpg", "objects.json", "thumb.jpg"
#: The overlay of photos analysed before it was stored as JPEG (``OVERLAY``): served for either
#: overlay name while a photo has no ``OVERLAY``; once it has one, that wins.
OLD_OVERLAY = "overlay.png"
PREVIEW = "preview.png"  # everything mode's masks before their names, while the job runs
#: MobileSAM's image embedding of the photo, (1, 256, 64, 64) float16 little-endian (2 MiB),
#: stored when its analysis is done: the page decodes taps on it
#: (``models.segment.onnx_decoder``).
EMBEDDING = "embedding.f16"
FILES = (ORIGINAL, OVERLAY, OBJECTS, THUMB, PREVIEW, OLD_OVERLAY, EMBEDDING)
MIMETYPES = {ORIGINAL: "image/jpeg", THUMB: "image/jpeg", OVERLAY: "image/jpeg",
             OLD_OVERLAY: "image/png", OBJECTS: "application/json", PREVIEW: "image/png",
             EMBEDDING: "application/octet-stream"}
#: Either overlay URL serves the first of these the photo has: the JPEG of a result made since
#: the overlay is JPEG, else the PNG of one made before (its photo has no JPEG).
OVERLAYS = (OVERLAY, OLD_OVERLAY)


#: A video's files: the clip as stored (video stream only, no audio or metadata; MP4 or WebM
#: by its codec, ``models.video.clean_copy``), its first frame (full size) and the library's
#: thumbnail of it (``THUMB``); once tracked, the overlay video (H.264 MP4), the first frame
#: of the overlay, the result JSON (``OBJECTS``: per-frame COCO RLE masks) and, while it runs,
#: the first frames' masks (``PREVIEW``).
CLIPS = ("clip.mp4", "clip.webm")
POSTER, OVERLAY_VIDEO, OVERLAY_POSTER = "poster.jpg", "overlay.mp4", "overlay-poster.jpg"
#: The name a video's clip is served under, whichever of ``CLIPS`` it is stored as.
CLIP = "clip"
VIDEO_FILES = (CLIP, POSTER, THUMB, OVERLAY_VIDEO, OVERLAY_POSTER, OBJECTS, PREVIEW)
VIDEO_MIMETYPES = {"clip.mp4": "video/mp4", "clip.webm": "video/webm",
                   POSTER: "image/jpeg", THUMB: "image/jpeg", OVERLAY_VIDEO: "video/mp4",
                   OVERLAY_POSTER: "image/jpeg", OBJECTS: "application/json",
                   PREVIEW: "image/png"}


def clip_name(suffix: str) -> str:
    """Storage name of a video's clip written with ``suffix`` (".mp4" or ".webm").

    Raises:
        ValueError: any other suffix.
    """
    name = f"clip{suffix}"
    if name not in CLIPS:
        raise ValueError(f"a clip is stored as MP4 or WebM, not {suffix!r}")
    return name


def reprompt_file(job_id: str, kind: str) -> str:
    """Storage name (under the photo's prefix) of a re-prompt job's picture, by the job's kind:
    a "words" job's overlay is a JPEG ("<job id>.jpg"), a "point" job's cut-out a PNG with
    alpha ("<job id>.png")."""
    return f"{job_id}.jpg" if kind == "words" else f"{job_id}.png"


def file_url(photo: Photo | int, name: str) -> str:
    """URL of one of a photo's ``FILES`` (served to its owner only)."""
    photo_id = photo if isinstance(photo, int) else photo.id
    return url_for("photos.file", photo_id=photo_id, name=name)


def video_file_url(video: Photo | int, name: str) -> str:
    """URL of one of a video's ``VIDEO_FILES`` (served to its owner only)."""
    video_id = video if isinstance(video, int) else video.id
    return url_for("videos.file", video_id=video_id, name=name)


def video_urls(video: Photo) -> dict[str, str | None]:
    """URLs of a video's page and files; the overlay video, its poster and the JSON only once
    its job is done."""
    done = video.status == "done"
    return {"page_url": url_for("videos.video", video_id=video.id),
            "clip_url": video_file_url(video, CLIP),
            "poster_url": video_file_url(video, POSTER),
            "thumb_url": video_file_url(video, THUMB),
            "overlay_url": video_file_url(video, OVERLAY_VIDEO) if done else None,
            "overlay_poster_url": video_file_url(video, OVERLAY_POSTER) if done else None,
            "json_url": video_file_url(video, OBJECTS) if done else None}


def item_urls(item: Photo) -> dict[str, str | None]:
    """The URLs of a library item: :func:`video_urls` or :func:`photo_urls` by its kind."""
    return video_urls(item) if item.is_video else photo_urls(item)


def photo_urls(photo: Photo) -> dict[str, str | None]:
    """URLs of a photo's page and files; overlay and JSON only once the job is done."""
    done = photo.status == "done"
    return {"page_url": url_for("photos.photo", photo_id=photo.id),
            "original_url": file_url(photo, ORIGINAL), "thumb_url": file_url(photo, THUMB),
            "overlay_url": file_url(photo, OVERLAY) if done else None,
            "json_url": file_url(photo, OBJECTS) if done else None,
            "embedding_url": file_url(photo, EMBEDDING) if done else None}
