"""The error a refused or unreadable clip raises."""

from __future__ import annotations

from models.errors import ModelError


class VideoError(ModelError, ValueError):
    """The file cannot be taken as a clip; ``str(e)`` is a sentence a parent can read
    ("This file is not a video.", "The clip is 21 s long; the longest is 15 s.").

    A :class:`~models.errors.ModelError`, so a video job that meets it fails with this
    sentence as its reason; a ``ValueError``, so the upload route can answer 400 with it.
    """
