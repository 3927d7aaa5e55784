"""COCO run-length encoding of masks (pycocotools), as stored in ``objects.json``."""

from __future__ import annotations

from typing import Any

import numpy as np
from pycocotools import mask as mask_utils


def mask_to_rle(mask: np.ndarray) -> dict[str, Any]:
    """Encode a mask as compressed COCO RLE.

    Args:
        mask: (H, W) array, bool (or 0/1 integers); True marks object pixels.

    Returns:
        ``{"size": [H, W], "counts": str}`` (counts is the ASCII compressed RLE string of the
        COCO format, column-major, as produced by ``pycocotools.mask.encode``).

    Raises:
        ValueError: ``mask`` is not two-dimensional.
    """
    array = np.asarray(mask)
    if array.ndim != 2:
        raise ValueError(f"mask must be 2-D (H, W), got shape {array.shape}")
    encoded = mask_utils.encode(np.asfortranarray(array.astype(bool, copy=False), dtype=np.uint8))
    return {
        "size": [int(encoded["size"][0]), int(encoded["size"][1])],
        "counts": encoded["counts"].decode("ascii"),
    }


def rle_to_mask(rle: dict[str, Any]) -> np.ndarray:
    """Decode ``{"size": [H, W], "counts": str | bytes}`` (COCO compressed RLE).

    Returns:
        (H, W) bool array.

    Raises:
        ValueError: ``rle`` lacks ``size``/``counts`` or ``size`` is not two integers.
    """
    try:
        height, width = (int(v) for v in rle["size"])
        counts = rle["counts"]
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a COCO RLE dict: {exc}") from exc
    if isinstance(counts, str):
        counts = counts.encode("ascii")
    decoded = mask_utils.decode({"size": [height, width], "counts": counts})
    return decoded.astype(bool)
