"""Errors raised by the inference service.

Every error derives from :class:`ModelError`; ``str(error)`` is a sentence that can be shown
to the person who uploaded the photo (or to the operator, for weights problems).
"""

from __future__ import annotations


class ModelError(Exception):
    """Base class: the photo could not be analysed; ``str(e)`` is a user-readable reason."""


class WeightsMissingError(ModelError):
    """Model weights are not on disk.

    The message names the command ``flask models download``, the exact path looked at and the
    environment variable (``MOBILE_SAM_CHECKPOINT`` / ``GROUNDING_DINO_MODEL`` /
    ``OMDET_TURBO_MODEL``) that overrides it.
    """


class WeightsUnverifiedError(ModelError):
    """Weights on disk are not the official release and ``allow_unverified_weights`` is False."""


class BadPromptError(ModelError, ValueError):
    """The text prompt is empty, too long, has control characters or too many phrases."""
