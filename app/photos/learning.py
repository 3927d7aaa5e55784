"""Learning with a photo, as pages that work without JavaScript: the favourite star, the
"words we learned" list, and the grown-up's speech settings. (The page's script uses the
same actions through ``app.api``.)"""

from __future__ import annotations

from flask import Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm

from app.db import Photo
from app.extensions import db
from app.photos.blueprint import bp
from app.photos.forms import SettingsForm, WordForm
from app.photos.service import own_photo_or_404
from app.photos.words import add_word, remove_word


def back_to_photo(photo: Photo, anchor: str = "") -> Response:
    """Redirect to the photo's page (optionally to one of its sections)."""
    return redirect(url_for("photos.photo", photo_id=photo.id) + anchor)


@bp.post("/photos/<int:photo_id>/favourite")
@login_required
def favourite_form(photo_id: int):
    """Toggle the favourite flag from the photo page's button."""
    photo = own_photo_or_404(photo_id)
    if not FlaskForm().validate_on_submit():
        abort(400)
    photo.favourite = request.form.get("favourite") == "1"
    db.session.commit()
    flash("Added to favourites." if photo.favourite else "Removed from favourites.", "success")
    return back_to_photo(photo)


@bp.post("/photos/<int:photo_id>/words")
@login_required
def add_word_form(photo_id: int):
    """Add a word to the photo's list from the page's form."""
    photo = own_photo_or_404(photo_id)
    form = WordForm()
    if not form.validate_on_submit():
        flash("Type a word (letters only) and try again.", "error")
        return back_to_photo(photo, "#words")
    try:
        add_word(photo, form.word.data)
    except ValueError as exc:
        flash(str(exc), "error")
    return back_to_photo(photo, "#words")


@bp.post("/photos/<int:photo_id>/words/<int:word_id>/delete")
@login_required
def delete_word_form(photo_id: int, word_id: int):
    """Remove a word from the photo's list from the page's form."""
    photo = own_photo_or_404(photo_id)
    if not FlaskForm().validate_on_submit():
        abort(400)
    if not remove_word(photo, word_id):
        abort(404)
    return back_to_photo(photo, "#words")


@bp.route("/settings", methods=["GET", "POST"])
@login_required
def settings():
    """The grown-up's settings: the voice and speed names are read in, and game sounds."""
    form = SettingsForm(obj=None)
    if request.method == "GET":
        form.voice.data = current_user.speech_voice or ""
        form.rate.data = current_user.speech_rate
        form.sounds.data = current_user.sound_effects
    elif form.validate_on_submit():
        current_user.speech_voice = (form.voice.data or "").strip() or None
        current_user.speech_rate = round(float(form.rate.data), 2)
        current_user.sound_effects = bool(form.sounds.data)
        db.session.commit()
        flash("Saved. Names will be read like this from now on.", "success")
        return redirect(url_for("photos.settings"))
    status = 400 if request.method == "POST" else 200
    return render_template("settings.html", form=form), status
