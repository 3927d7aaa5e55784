"""Words a child learns from a photo: object names, "something?", the photo's word list, and
how the grown-up wants names spoken (voice, rate, game sounds)."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import BooleanField, FloatField, StringField, SubmitField
from wtforms.validators import InputRequired, Length, NumberRange, Optional

from app.db import Photo, PhotoWord
from app.extensions import db

#: Longest word (or short phrase, "teddy bear") and most words on one photo's list.
MAX_WORD, MAX_WORDS = 40, 100
#: Speech rates offered (SpeechSynthesisUtterance.rate: 1 is the voice's normal speed;
#: below about 0.5 words break up, above 1.5 they run together for a young listener).
MIN_RATE, MAX_RATE, DEFAULT_RATE = 0.5, 1.5, 0.9
#: What the vision side calls an object it cannot name confidently (INTERFACES.md ADDENDUM).
UNSURE_LABEL = "something?"

_NUMBERED = re.compile(r"^object \d+$")
# Letters (any script), with single spaces, hyphens or apostrophes between them.
_WORD = re.compile(r"^[^\W\d_]+(?:[ '\-’][^\W\d_]+)*$")


def is_named(label: str | None, named: bool | None = None) -> bool:
    """True when an object's ``label`` is a name the app may say with confidence.

    ``named`` is ``ObjectResult.named`` from objects.json when the vision side sends it. Without
    it (older results), "object N" (everything mode's numbers), "something?" and empty labels
    are unnamed and anything else (grounded mode's phrases) is named.
    """
    if isinstance(named, bool):
        return named
    text = (label or "").strip().lower()
    return bool(text) and text != UNSURE_LABEL and not _NUMBERED.match(text)


def clean_word(text: Any) -> str:
    """Return ``text`` as a list word: NFC, trimmed, single spaces, lower-case.

    Raises:
        ValueError: empty, longer than MAX_WORD characters, or not letters (a readable reason).
    """
    if not isinstance(text, str):
        raise ValueError("Type a word, like “teddy”.")
    word = " ".join(unicodedata.normalize("NFC", text).split()).lower()
    if not word:
        raise ValueError("Type a word, like “teddy”.")
    if len(word) > MAX_WORD:
        raise ValueError(f"That word is too long (at most {MAX_WORD} letters).")
    if not _WORD.match(word):
        raise ValueError("Use letters only, like “teddy bear”.")
    return word.replace("’", "'")


def add_word(photo: Photo, text: Any) -> PhotoWord:
    """Add a word to the photo's list and commit; an existing word is returned unchanged.

    Raises:
        ValueError: a bad word (see :func:`clean_word`) or the list already has MAX_WORDS.
    """
    word = clean_word(text)
    existing = db.session.scalar(
        select(PhotoWord).where(PhotoWord.photo_id == photo.id, PhotoWord.word == word))
    if existing is not None:
        return existing
    if len(photo.words) >= MAX_WORDS:
        raise ValueError(f"This photo already has {MAX_WORDS} words.")
    entry = PhotoWord(photo=photo, word=word)
    db.session.add(entry)
    db.session.commit()
    return entry


def remove_word(photo: Photo, word_id: int) -> bool:
    """Remove word ``word_id`` from the photo's list; False if it is not on this photo's list."""
    entry = db.session.get(PhotoWord, word_id)
    if entry is None or entry.photo_id != photo.id:
        return False
    db.session.delete(entry)
    db.session.commit()
    return True


def serialize_words(photo: Photo) -> list[dict[str, Any]]:
    """The photo's word list for the API: ``[{"id", "word"}]`` in the order they were added."""
    return [{"id": w.id, "word": w.word} for w in photo.words]


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
