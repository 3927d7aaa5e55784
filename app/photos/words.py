"""The "words we learned" list of a photo: words a child named, or a grown-up added."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from sqlalchemy import select

from app.db import Photo, PhotoWord
from app.extensions import db

#: Longest word (or short phrase, "teddy bear") and most words on one photo's list.
MAX_WORD, MAX_WORDS = 40, 100
# Letters (any script), with single spaces, hyphens or apostrophes between them.
_WORD = re.compile(r"^[^\W\d_]+(?:[ '\-’][^\W\d_]+)*$")


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
