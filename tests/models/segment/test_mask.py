"""models.segment.mask.Mask: a photo-size mask kept as the crop of its tight box."""

from __future__ import annotations

import numpy as np
import pytest

from models.result import ObjectResult
from models.segment.mask import Mask, tight


def _array() -> np.ndarray:
    full = np.zeros((40, 60), dtype=bool)
    full[10:15, 20:31] = True
    full[12, 40] = True
    return full


def test_from_array_keeps_the_tight_box_and_gives_the_array_back():
    full = _array()
    mask = Mask.from_array(full)
    assert (mask.top, mask.left, mask.crop.shape) == (10, 20, (5, 21))
    assert mask.shape == (40, 60) and mask.area == int(full.sum())
    assert mask.box == (20.0, 10.0, 41.0, 15.0)
    assert mask.slices == (slice(10, 15), slice(20, 41))
    assert np.array_equal(np.asarray(mask), full) and np.asarray(mask).dtype == bool
    assert np.asarray(mask, dtype=np.uint8).max() == 1
    assert np.array_equal(mask.region(0, 0, 40, 60), full)
    assert np.array_equal(mask.region(11, 25, 13, 45), full[11:13, 25:45])
    assert not mask.region(0, 0, 5, 5).any()
    assert mask == Mask.from_array(full) and mask != Mask.from_array(np.zeros((40, 60), bool))


def test_empty_masks_and_bad_input():
    empty = Mask.from_array(np.zeros((4, 5), dtype=np.uint8))
    assert empty == Mask.empty(4, 5)
    assert empty.area == 0 and empty.slices is None and empty.box == (0.0, 0.0, 0.0, 0.0)
    assert np.array_equal(np.asarray(empty), np.zeros((4, 5), dtype=bool))
    with pytest.raises(ValueError, match="2-D"):
        Mask.from_array(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="outside"):
        Mask(10, 10, 8, 0, np.ones((3, 3), dtype=bool))
    with pytest.raises(ValueError, match="bool"):
        Mask(10, 10, 0, 0, np.ones((3, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="outside"):
        Mask.empty(4, 5).region(0, 0, 5, 5)


def test_tight_places_a_region_and_crops_it():
    region = np.zeros((6, 6), dtype=bool)
    region[2:4, 1:3] = True
    mask = tight(region, 100, 200, (300, 400))
    assert (mask.top, mask.left, mask.crop.shape) == (102, 201, (2, 2))
    assert not np.shares_memory(mask.crop, region)


def test_object_results_take_an_array_or_a_mask():
    full = _array()
    obj = ObjectResult("cat", 0.9, (20.0, 10.0, 41.0, 15.0), full, int(full.sum()), (1, 2, 3))
    assert isinstance(obj.mask, Mask) and np.array_equal(np.asarray(obj.mask), full)
    same = ObjectResult("cat", 0.9, obj.box, obj.mask, obj.area, (1, 2, 3))
    assert same.mask is obj.mask
    assert obj.to_json()["mask"] == same.to_json()["mask"]


def test_resized_masks_take_the_nearest_pixel():
    """``Mask.resized`` from the crop equals nearest-neighbour resizing of the whole array
    (each new pixel takes the old pixel its centre falls in)."""
    rng = np.random.default_rng(0)
    full = np.zeros((300, 400), dtype=bool)
    full[40:200, 90:310] = rng.random((160, 220)) > 0.4
    mask = Mask.from_array(full)
    for height, width in [(75, 100), (300, 400), (31, 17), (600, 800), (299, 401)]:
        rows = np.floor((np.arange(height) + 0.5) / (height / 300)).astype(int)
        cols = np.floor((np.arange(width) + 0.5) / (width / 400)).astype(int)
        want = full[np.ix_(rows, cols)]
        got = mask.resized(height, width)
        assert got.shape == (height, width)
        assert np.array_equal(np.asarray(got), want), (height, width)
    assert Mask.empty(5, 5).resized(2, 2) == Mask.empty(2, 2)
    with pytest.raises(ValueError):
        mask.resized(0, 10)


def test_masks_keep_their_crop_packed_eight_pixels_to_a_byte():
    """A 12-MP photo's mask that fills its photo is kept in 1.5 MB, not 12 MB, and gives back
    exactly its pixels, for crop widths that are not multiples of 8 too."""
    rng = np.random.default_rng(1)
    for height, width in [(7, 13), (1, 1), (64, 8), (33, 129)]:
        full = rng.random((height, width)) > 0.5
        full[0, 0] = full[-1, -1] = True  # the tight box is the whole array
        mask = Mask.from_array(full)
        assert mask.crop_shape == (height, width)
        assert mask.nbytes == height * -(-width // 8)
        assert mask.crop.dtype == bool and np.array_equal(mask.crop, full)
        assert mask.area == int(full.sum())
        assert np.array_equal(mask.region(height // 2, width // 3, height, width),
                              full[height // 2 :, width // 3 :])
    big = Mask(3000, 4000, 0, 0, np.ones((3000, 4000), dtype=bool))
    assert big.nbytes == 1_500_000 and big.area == 12_000_000


def test_masks_are_immutable_and_survive_pickling():
    import pickle

    mask = Mask.from_array(_array())
    with pytest.raises(AttributeError, match="immutable"):
        mask.top = 0  # type: ignore[misc]
    copy = pickle.loads(pickle.dumps(mask))
    assert copy == mask and (copy.top, copy.left, copy.area) == (mask.top, mask.left, mask.area)


@pytest.mark.parametrize("step", [1, 2, 3, 8, 13])
def test_crop_sample_equals_slicing_the_crop(step):
    rng = np.random.default_rng(step)
    array = np.zeros((97, 131), dtype=bool)
    array[5:90, 7:120] = rng.random((85, 113)) < 0.3
    mask = Mask.from_array(array)
    rows, cols = slice(step // 2, None, step), slice(step // 2, 100, step)
    expected = mask.crop[rows, cols]
    sample = mask.crop_sample(rows, cols)
    assert sample.dtype == bool and sample.shape == expected.shape
    assert np.array_equal(sample, expected)
