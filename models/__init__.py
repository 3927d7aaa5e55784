"""VisionAnything inference service: detect (Grounding DINO), segment (MobileSAM), render.

The pipeline at a glance: ``service`` (one object owns the models and runs a photo through
them), ``worker`` (the job loop around it), ``result`` (what an analysis returns), ``config``,
``errors`` and ``prompts`` (what a photo can be asked); one subpackage per stage: ``detect``
(Grounding DINO), ``segment`` (MobileSAM), ``render`` (overlay, colours, colour words),
``runtime`` (weights, precision, allocator) and ``patches`` (faster replacements of library
internals, applied by the loaders).

Importing this package is cheap: it imports neither torch nor any model; the heavy modules
(``models.segment.segmenter``, ``models.detect.detector``) are imported lazily by
``models.service``.
"""

from __future__ import annotations

from models.config import ServiceConfig
from models.errors import BadPromptError, ModelError, WeightsMissingError, WeightsUnverifiedError

__all__ = [
    "BadPromptError",
    "ModelError",
    "ServiceConfig",
    "WeightsMissingError",
    "WeightsUnverifiedError",
]
