"""The ``videos`` blueprint (a video's page and files), and the request size limit of the
routes that take a video upload."""

from __future__ import annotations

from flask import Blueprint, current_app, request

bp = Blueprint("videos", __name__)

#: Routes whose requests may carry a video: the API's upload and the upload page's form
#: (which takes a photo or a video; a photo is held to MAX_CONTENT_LENGTH in its view).
VIDEO_UPLOAD_ENDPOINTS = frozenset({"api.create_video", "photos.upload"})


def raise_upload_limit() -> None:
    """Before every request (registered ahead of the CSRF check, which reads the form): the
    API's video upload may be as large as ``MAX_VIDEO_BYTES``, the upload page's form as the
    larger of a video and a photo; every other request keeps ``MAX_CONTENT_LENGTH``."""
    video = current_app.config["MAX_VIDEO_BYTES"]
    if request.endpoint == "api.create_video":
        request.max_content_length = video
    elif request.endpoint in VIDEO_UPLOAD_ENDPOINTS:
        request.max_content_length = max(video, current_app.config["MAX_CONTENT_LENGTH"] or 0)


def too_large_message() -> str:
    """What a 413 says on the current request: the video limit, the photo limit, or both."""
    mib = 2**20
    photo_mb = (current_app.config["MAX_CONTENT_LENGTH"] or 0) / mib
    video_mb = current_app.config["MAX_VIDEO_BYTES"] / mib
    if request.endpoint == "api.create_video":
        return f"This video is too large: the largest is {video_mb:.3g} MB."
    if request.endpoint == "photos.upload":
        return (f"This file is too large: a photo can be at most {photo_mb:.3g} MB, a video "
                f"{video_mb:.3g} MB.")
    return f"That file is too large: the largest photo is {photo_mb:.3g} MB."
