"""COCO RLE of masks, as stored in objects.json, checked against pycocotools."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from models.segment.rle import mask_to_rle, rle_to_mask

# pycocotools 2.0.11's Cython decode trips numpy 2's __array__(copy=) deprecation; harmless.
PYCOCOTOOLS_NUMPY2 = "ignore:__array__ implementation doesn't accept a copy keyword"
pytestmark = pytest.mark.filterwarnings(PYCOCOTOOLS_NUMPY2)


def _masks():
    rng = np.random.default_rng(0)
    yield np.zeros((7, 5), dtype=bool)
    yield np.ones((3, 11), dtype=bool)
    yield rng.random((48, 64)) > 0.5
    disc = np.zeros((120, 90), dtype=bool)
    yy, xx = np.mgrid[:120, :90]
    disc[(yy - 60) ** 2 + (xx - 40) ** 2 < 30**2] = True
    yield disc


@pytest.mark.parametrize("mask", list(_masks()))
def test_round_trip_is_exact_and_matches_pycocotools(mask):
    rle = mask_to_rle(mask)
    assert rle["size"] == [mask.shape[0], mask.shape[1]]
    assert isinstance(rle["counts"], str)
    rle = json.loads(json.dumps(rle))  # survives objects.json
    decoded = rle_to_mask(rle)
    assert decoded.dtype == bool and decoded.shape == mask.shape
    assert np.array_equal(decoded, mask)
    coco = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
    assert int(mask_utils.area(coco)) == int(mask.sum())
    assert np.array_equal(mask_utils.decode(coco).astype(bool), mask)


def test_integer_masks_are_accepted():
    mask = np.array([[0, 1], [1, 1]], dtype=np.uint8)
    assert np.array_equal(rle_to_mask(mask_to_rle(mask)), mask.astype(bool))


def test_non_2d_masks_and_bad_rles_are_refused():
    with pytest.raises(ValueError):
        mask_to_rle(np.zeros((2, 3, 4), dtype=bool))
    with pytest.raises(ValueError):
        rle_to_mask({"counts": "abc"})
