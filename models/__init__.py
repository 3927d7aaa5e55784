"""VisionAnything inference service: detect (Grounding DINO), segment (MobileSAM), render.

Importing this package is cheap: it imports neither torch nor any model; the heavy modules
(``models.segmenter``, ``models.detector``) are imported lazily by ``models.service``.
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
