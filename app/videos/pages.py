"""A video's page (the overlay video, progress while it is tracked, the objects, learning on
a paused frame) and its files, served to its owner only."""

from __future__ import annotations

from flask import Response, abort, render_template, request, send_file
from flask_login import login_required
from flask_wtf import FlaskForm

from app.files import CLIP, CLIPS, VIDEO_FILES, VIDEO_MIMETYPES, video_urls
from app.photos.service import photo_weights
from app.storage import storage
from app.videos.blueprint import bp
from app.videos.service import overlay_size, own_video_or_404


@bp.route("/videos/<int:video_id>")
@login_required
def video(video_id: int):
    """A video's result page (polls its job while it runs)."""
    video = own_video_or_404(video_id)
    return render_template("video.html", video=video, urls=video_urls(video),
                           overlay_size=overlay_size(video), weights=photo_weights(video),
                           job=video.job, form=FlaskForm())


@bp.route("/videos/<int:video_id>/<any(" + ", ".join(f'"{n}"' for n in VIDEO_FILES)
          + "):name>")
@login_required
def file(video_id: int, name: str):
    """Serve one of the video's files to its owner, with byte ranges (iOS Safari plays a
    video only from a server that answers them; from a bucket only the range asked for is
    fetched); ``?download=1`` saves it as a file.

    "clip" is the clip as stored, MP4 or WebM (``CLIPS``), served with its own type."""
    video = own_video_or_404(video_id)
    store = storage()
    download = request.args.get("download") == "1"
    for stored in CLIPS if name == CLIP else (name,):
        key = video.storage_prefix + stored
        try:
            if request.range is not None and not download and hasattr(store, "read_range"):
                response = _ranged(store, key, VIDEO_MIMETYPES[stored])
            else:
                response = send_file(store.send_source(key), mimetype=VIDEO_MIMETYPES[stored],
                                     as_attachment=download,
                                     download_name=f"video-{video.id}-{stored}", max_age=0,
                                     conditional=True)
            break
        except FileNotFoundError:
            continue
    else:
        abort(404)
    response.headers["Cache-Control"] = "private, max-age=0, must-revalidate"
    return response


def _ranged(store, key: str, mimetype: str) -> Response:
    """The byte range the request asks for of ``key`` in a bucket (``S3Storage``): only that
    piece is fetched (a phone's player asks for a clip piece by piece); 416 for a range past
    the end.

    Raises:
        FileNotFoundError: no such object.
    """
    total = store.size(key)
    span = request.range.range_for_length(total)
    if span is None:
        response = Response(status=416)
        response.headers["Content-Range"] = f"bytes */{total}"
        return response
    start, stop = span
    response = Response(store.read_range(key, start, stop), status=206, mimetype=mimetype)
    response.headers["Content-Range"] = f"bytes {start}-{stop - 1}/{total}"
    response.headers["Accept-Ranges"] = "bytes"
    return response
