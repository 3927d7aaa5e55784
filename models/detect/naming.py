"""Name masks with vocabulary detections: a mask takes a word only when a confident box of
that word (OmDet-Turbo's vocabulary pass, or Grounding DINO's where OmDet-Turbo's weights are
missing) fits it, and no other word fits it about as well.

Never a wrong name said with confidence: an object is named only if
    1. a detection's score (OmDet-Turbo: the sigmoid of the word's logit; Grounding DINO: the
       mean probability over its word's tokens, ``models.detect.detector.phrase_scores``) is
       at least ``NAME_SCORE`` (0.4: above the box thresholds of both detectors' demos,
       OmDet-Turbo's 0.3 and Grounding DINO's 0.35, since a word said aloud to a child needs
       more confidence than a box drawn; a two-token word such as "teddy bear" must hold it on
       average under Grounding DINO), and
    2. the IoU of the mask's tight box with the detection's box is at least ``MATCH_IOU``
       (0.7: stricter than the 0.5 of PASCAL VOC / COCO AP50, so a part or a neighbour does not
       inherit the whole's name), and
    3. no detection of a *different* word also passing 1 and 2 scores within ``MARGIN`` (0.05)
       of the best one (two words fitting equally well means we do not know).
Otherwise the object is "something?" and ``named`` is False.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from models.result import UNSURE_LABEL

NAME_SCORE = 0.4
MATCH_IOU = 0.7
MARGIN = 0.05

Box = tuple[float, float, float, float]


class Name(NamedTuple):
    """What a mask is called: ``label`` (a vocabulary word or "something?"), ``named`` (False
    for "something?"), ``score`` (the naming detection's score, 0-1; 0.0 when unnamed)."""

    label: str
    named: bool
    score: float


UNNAMED = Name(UNSURE_LABEL, False, 0.0)


def box_iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` (N, 4) with every box of ``b`` (M, 4), xyxy pixels -> (N, M)
    float64 in 0-1 (0 where a union is empty)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def name_boxes(
    mask_boxes: Sequence[Box],
    detections: Sequence[tuple[str, float, Box]],
    *,
    min_score: float = NAME_SCORE,
    min_iou: float = MATCH_IOU,
    margin: float = MARGIN,
) -> list[Name]:
    """Name each mask (given by its tight box) from (label, score, box) detections.

    Args:
        mask_boxes: (x0, y0, x1, y1) tight box of each mask, photo pixels.
        detections: e.g. ``models.detect.detector.Detection`` from a vocabulary pass, photo pixels.
        min_score, min_iou, margin: the rules of this module's docstring.

    Returns:
        One :class:`Name` per mask, in order.
    """
    names = [UNNAMED] * len(mask_boxes)
    confident = [d for d in detections if d[1] >= min_score]
    if not mask_boxes or not confident:
        return names
    ious = box_iou_matrix(np.array(mask_boxes), np.array([d[2] for d in confident]))
    for i in range(len(mask_boxes)):
        fits = [confident[j] for j in np.flatnonzero(ious[i] >= min_iou)]
        if not fits:
            continue
        best = max(fits, key=lambda d: d[1])
        rival = max((d[1] for d in fits if d[0] != best[0]), default=-1.0)
        if rival >= best[1] - margin:
            continue
        names[i] = Name(best[0], True, float(best[1]))
    return names
