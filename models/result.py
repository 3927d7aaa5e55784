"""Result types of one analysis, and their JSON form (``objects.json``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.render.color_names import describe
from models.render.palette import hex_color
from models.segment.mask import Mask
from models.segment.rle import mask_to_rle

Box = tuple[float, float, float, float]
#: The label of an object that could not be named with confidence (``models.detect.naming``); pages
#: show it capitalised ("Something?") and never say a guess aloud.
UNSURE_LABEL = "something?"
#: Labels of results made when everything mode numbered its objects ("object 3"): not names.
NUMBERED_LABEL = re.compile(r"^object \d+$")


def is_named(label: str | None, named: bool | None = None) -> bool:
    """True when an object's ``label`` is a name the app may say with confidence.

    ``named`` is the object's own flag (:attr:`ObjectResult.named`), which wins when given.
    Without it (results stored before the flag existed), "something?", "object N" and empty
    labels are not names and anything else (grounded mode's phrases) is.
    """
    if isinstance(named, bool):
        return named
    text = (label or "").strip().lower()
    return bool(text) and text != UNSURE_LABEL and not NUMBERED_LABEL.match(text)


@dataclass
class ObjectResult:
    """One coloured, named object.

    Attributes:
        label: a vocabulary word or "something?" (everything mode and point prompts), or the
            detected phrase, e.g. "cat" (grounded).
        score: 0-1; predicted mask IoU (everything, point) or detection score (grounded).
        box: (x0, y0, x1, y1) in pixels of the photo, 0 <= x0 <= x1 <= width.
        mask: the (H, W) photo-size mask (True marks the object's pixels), kept as the crop
            of its tight box (:class:`models.segment.mask.Mask`; ``np.asarray(mask)`` is the (H, W)
            bool array). An (H, W) array given here is converted.
        area: number of True pixels in ``mask``.
        color: (r, g, b) 0-255 used for the tint, contour and label.
        color_name: the object's main colour as a basic colour term ("red"; see
            ``models.render.color_names``), or None (many colours, too small, not judged).
        named: True when ``label`` is a name said with confidence (grounded mode's phrases,
            vocabulary words that passed ``models.detect.naming``'s rules); False for "something?".
            Left out (None), it is derived from the label: False for "something?" and an
            older result's "object N", else True.
    """

    label: str
    score: float
    box: Box
    mask: Mask
    area: int
    color: tuple[int, int, int]
    named: bool | None = None
    color_name: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.mask, Mask):
            self.mask = Mask.from_array(np.asarray(self.mask))
        self.named = is_named(self.label, self.named)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict: label, named, color_name, description (what is said aloud, e.g.
        "a yellow duck"; the label for an unnamed object), score, box [x0,y0,x1,y1] px, area
        px, "#rrggbb", COCO RLE."""
        return {
            "label": self.label,
            "named": bool(self.named),
            "color_name": self.color_name,
            "description": describe(self.label, self.color_name) if self.named else self.label,
            "score": round(float(self.score), 4),
            "box": [round(float(v), 1) for v in self.box],
            "area": int(self.area),
            "color": hex_color(self.color),
            "mask": mask_to_rle(self.mask),
        }


@dataclass
class AnalysisResult:
    """Everything found in one photo.

    Attributes:
        width, height: photo size in pixels after EXIF orientation; every mask is (height, width).
        mode: "everything", "grounded", or "point" (one object under a tapped point).
        prompt: the prompt as typed (grounded), None otherwise.
        objects: everything mode: largest area first, each a vocabulary word or "something?";
            grounded mode: the detected phrase, highest score first; point: exactly one.
        weights: {"mobile_sam": "official"|"unverified", "grounding_dino": ...} for the
            models used.
        timings: seconds per stage, e.g. {"load": ..., "embed": ..., "total": ...}.
    """

    width: int
    height: int
    mode: str
    prompt: str | None
    objects: list[ObjectResult]
    weights: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The ``objects.json`` document: {"width","height","mode","prompt","weights","objects"}.

        Each object is {"label","named","color_name","description","score",
        "box":[x0,y0,x1,y1],"area","color":"#rrggbb",
        "mask":{"size":[h,w],"counts":str}} (COCO compressed RLE, see ``models.segment.rle``).
        """
        return {
            "width": self.width,
            "height": self.height,
            "mode": self.mode,
            "prompt": self.prompt,
            "weights": dict(self.weights),
            "objects": [obj.to_json() for obj in self.objects],
        }
