"""The home page: the landing page, or the upload page when logged in."""

from flask import flash, redirect, render_template, url_for
from flask_login import current_user, login_required

from app.imaging import ImageRejected
from app.photos.blueprint import bp
from app.photos.forms import UploadForm, chosen_file
from app.photos.service import TooManyPendingJobs, submit_photo
from app.storage import StorageError
from models.errors import BadPromptError


@bp.route("/", methods=["GET"])
def index():
    """The upload page for a logged-in user, the landing page otherwise."""
    if not current_user.is_authenticated:
        return render_template("landing.html")
    return render_template("index.html", form=UploadForm())


@bp.route("/", methods=["POST"])
@login_required
def upload():
    """No-JavaScript upload: store the photo, queue the job, go to the photo's page."""
    form = UploadForm()
    data = chosen_file("image")
    if data is None:
        form.image.errors = ["Choose or take a photo first."]
    elif form.validate_on_submit():
        try:
            photo, _ = submit_photo(current_user, data, form.mode.data, form.prompt.data)
        except (ImageRejected, BadPromptError, ValueError) as exc:
            target = form.prompt if isinstance(exc, BadPromptError) else form.image
            target.errors = [*target.errors, str(exc)]
        except StorageError:
            flash("We could not save your photo just now. Please try again.", "error")
        except TooManyPendingJobs as exc:
            flash(str(exc), "error")
            return render_template("index.html", form=form), 429, {
                "Retry-After": str(exc.retry_after)}
        else:
            return redirect(url_for("photos.photo", photo_id=photo.id))
    return render_template("index.html", form=form), 400
