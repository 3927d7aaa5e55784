"""The home page: the landing page, or the upload page when logged in."""

from flask import current_app, flash, redirect, render_template, url_for
from flask_login import current_user, login_required

from app.imaging import ImageRejected
from app.photos.blueprint import bp
from app.photos.forms import UploadForm, chosen_file, chosen_upload
from app.photos.service import TooManyPendingJobs, submit_photo
from app.storage import StorageError
from app.videos.service import VideoPromptError, parse_video_prompt, submit_video
from models.errors import BadPromptError
from models.video.errors import VideoError


@bp.route("/", methods=["GET"])
def index():
    """The upload page for a logged-in user, the landing page otherwise."""
    if not current_user.is_authenticated:
        return render_template("landing.html")
    return render_template("index.html", form=UploadForm())


@bp.route("/", methods=["POST"])
@login_required
def upload():
    """No-JavaScript upload of a photo or a video: store it, queue the job, go to its page.

    The request may be as large as a video (``MAX_VIDEO_BYTES``); a photo larger than
    ``MAX_CONTENT_LENGTH`` is refused here with 413."""
    form = UploadForm()
    video = chosen_upload("video")
    data = None if video is not None else chosen_file("image")
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if video is None and data is None:
        form.image.errors = ["Choose or take a photo or a video first."]
    elif data is not None and limit and len(data) > limit:
        form.image.errors = [f"This photo is too large (at most {limit / 2**20:.3g} MB). "
                             "Please send a smaller photo."]
        return render_template("index.html", form=form), 413
    elif form.validate_on_submit():
        try:
            if video is not None:
                item, _ = submit_video(current_user, video, parse_video_prompt(
                    form.mode.data, form.prompt.data))
                target_url = url_for("videos.video", video_id=item.id)
            else:
                item, _ = submit_photo(current_user, data, form.mode.data, form.prompt.data)
                target_url = url_for("photos.photo", photo_id=item.id)
        except (ImageRejected, VideoError, VideoPromptError, BadPromptError, ValueError) as exc:
            target = form.prompt if isinstance(exc, BadPromptError) else (
                form.video if video is not None else form.image)
            target.errors = [*target.errors, str(exc)]
        except StorageError:
            flash(f"We could not save your {'video' if video else 'photo'} just now. "
                  "Please try again.", "error")
        except TooManyPendingJobs as exc:
            flash(str(exc), "error")
            return render_template("index.html", form=form), 429, {
                "Retry-After": str(exc.retry_after)}
        else:
            return redirect(target_url)
    return render_template("index.html", form=form), 400
