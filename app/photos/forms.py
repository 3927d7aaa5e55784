"""The photo pages' forms (Flask-WTF, CSRF-protected): upload, a word for the list, speech
settings; and reading an uploaded file from the request."""

from flask import request
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from werkzeug.datastructures import FileStorage
from wtforms import BooleanField, FloatField, RadioField, StringField, SubmitField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, NumberRange, Optional

from app.photos.words import MAX_WORD

#: Speech rates offered (SpeechSynthesisUtterance.rate: 1 is the voice's normal speed;
#: below about 0.5 words break up, above 1.5 they run together for a young listener).
MIN_RATE, MAX_RATE, DEFAULT_RATE = 0.5, 1.5, 0.9


def chosen_upload(field: str) -> FileStorage | None:
    """The first file sent under ``field`` that was actually chosen (not read), or None."""
    for upload in request.files.getlist(field):
        if upload.filename:
            return upload
    return None


def chosen_file(field: str) -> bytes | None:
    """Bytes of the first file sent under ``field`` that was actually chosen, or None.

    The upload page has two inputs named ``image`` (camera and photo library); the browser sends
    both, the one not used as an empty part without a filename.
    """
    for upload in request.files.getlist(field):
        if upload.filename:
            return upload.read()
    return None


class UploadForm(FlaskForm):
    """A photo or a video, and what to look for in it (a video: followed from its first
    frame; tapping what to follow needs the page's script and the API)."""

    mode = RadioField("What should we look for?", default="everything", choices=[
        SelectChoice("everything", "Find everything"), SelectChoice("grounded", "Find by name")])
    prompt = StringField("Names to find", validators=[Optional(), Length(max=500)],
                         render_kw={"placeholder": "cat, ball", "autocomplete": "off"})
    # Checked in the view: two inputs share this name (camera and photo library).
    image = FileField("Photo", render_kw={"accept": "image/*", "capture": "environment"})
    video = FileField("Video", render_kw={"accept": "video/*", "capture": "environment"})
    submit = SubmitField("Find the objects")


class WordForm(FlaskForm):
    """Add one word to a photo's list (the no-JavaScript form; the page's script uses the API)."""

    word = StringField("A new word", validators=[InputRequired(), Length(max=MAX_WORD)],
                       render_kw={"autocomplete": "off", "autocapitalize": "none",
                                  "enterkeyhint": "done"})
    submit = SubmitField("Add")


class SettingsForm(FlaskForm):
    """How names are spoken: the voice (a browser voice name; empty = the device's default),
    the rate, and whether the game plays sounds."""

    voice = StringField("Voice", validators=[Optional(), Length(max=200)])
    rate = FloatField("How fast", default=DEFAULT_RATE,
                      validators=[InputRequired(), NumberRange(MIN_RATE, MAX_RATE)])
    sounds = BooleanField("Play happy sounds in the game", default=True)
    submit = SubmitField("Save")
