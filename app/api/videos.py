"""API: upload a video with what to follow in it, the videos, one video, delete."""

from flask import jsonify, request
from flask_login import current_user, login_required

from app.api.blueprint import bp
from app.api.serializers import error, serialize_video
from app.photos.forms import chosen_upload
from app.photos.service import TooManyPendingJobs, delete_photo, user_photos
from app.storage import StorageError
from app.videos.service import (
    VideoPromptError,
    own_video_or_404,
    parse_video_prompt,
    submit_video,
)
from models.errors import BadPromptError
from models.video.errors import VideoError


@bp.post("/videos")
@login_required
def create_video():
    """Store an uploaded clip (multipart ``video``) with what to follow in it (``mode``
    point|grounded|everything, ``prompt``, ``points`` ``[[frame, x, y], ...]``, ``frame`` or
    ``time_s``) and queue its tracking; answers 202 ``{"video_id", "job_id"}`` at once."""
    upload = chosen_upload("video")
    if upload is None:
        return error(400, "Send the video in the form field 'video'.")
    form = request.form
    try:
        prompt = parse_video_prompt(form.get("mode"), form.get("prompt"), form.get("points"),
                                    form.get("frame"), form.get("time_s"))
        video, job = submit_video(current_user, upload, prompt)
    except VideoError as exc:
        return error(415, str(exc))
    except (VideoPromptError, BadPromptError) as exc:
        return error(400, str(exc))
    except StorageError:
        return error(503, "We could not save your video just now. Please try again.")
    except TooManyPendingJobs as exc:
        return error(429, str(exc), retry_after=exc.retry_after)
    return jsonify(video_id=video.id, job_id=job.id), 202


@bp.get("/videos")
@login_required
def list_videos():
    """The user's videos, newest first."""
    return jsonify(videos=[serialize_video(v) for v in user_photos(kind="video")])


@bp.get("/videos/<int:video_id>")
@login_required
def get_video(video_id: int):
    """One video with its objects."""
    return jsonify(serialize_video(own_video_or_404(video_id)))


@bp.delete("/videos/<int:video_id>")
@login_required
def remove_video(video_id: int):
    """Delete a video and every file of it."""
    delete_photo(own_video_or_404(video_id))
    return "", 204
