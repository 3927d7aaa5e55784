"""A photo's files in storage: their names, types and URLs.

Every photo's files live under its storage prefix (``u<user>/p<photo>/``,
:attr:`app.db.Photo.storage_prefix`) in the configured storage (``app.storage``).
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


def reprompt_file(job_id: str, kind: str) -> str:
    """Storage name (under the photo's prefix) of a re-prompt job's picture, by the job's kind:
    a "words" job's overlay is a JPEG ("<job id>.jpg"), a "point" job's cut-out a PNG with
    alpha ("<job id>.png")."""
    return f"{job_id}.jpg" if kind == "words" else f"{job_id}.png"


def file_url(photo: Photo | int, name: str) -> str:
    """URL of one of a photo's ``FILES`` (served to its owner only)."""
    photo_id = photo if isinstance(photo, int) else photo.id
    return url_for("photos.file", photo_id=photo_id, name=name)


def photo_urls(photo: Photo) -> dict[str, str | None]:
    """URLs of a photo's page and files; overlay and JSON only once the job is done."""
    done = photo.status == "done"
    return {"page_url": url_for("photos.photo", photo_id=photo.id),
            "original_url": file_url(photo, ORIGINAL), "thumb_url": file_url(photo, THUMB),
            "overlay_url": file_url(photo, OVERLAY) if done else None,
            "json_url": file_url(photo, OBJECTS) if done else None,
            "embedding_url": file_url(photo, EMBEDDING) if done else None}
