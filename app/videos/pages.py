"""A video's page (the overlay video, progress while it is tracked, the objects, learning on
a paused frame) and its files, served to its owner only."""

from __future__ import annotations

from flask import abort, render_template, request, send_file
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
    video only from a server that answers them); ``?download=1`` saves it as a file.

    "clip" is the clip as stored, MP4 or WebM (``CLIPS``), served with its own type."""
    video = own_video_or_404(video_id)
    for stored in CLIPS if name == CLIP else (name,):
        try:
            source = storage().send_source(video.storage_prefix + stored)
            break
        except FileNotFoundError:
            continue
    else:
        abort(404)
    download = request.args.get("download") == "1"
    response = send_file(source, mimetype=VIDEO_MIMETYPES[stored], as_attachment=download,
                         download_name=f"video-{video.id}-{stored}", max_age=0,
                         conditional=True)
    response.headers["Cache-Control"] = "private, max-age=0, must-revalidate"
    return response
