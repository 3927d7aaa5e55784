"""A binary mask kept as the bits of the crop of its tight box.

At 12 megapixels a photo-size bool mask is 12 MB; twenty of them (grounded mode's cap) were
240 MB of the worker's peak memory, nearly all of it False. :class:`Mask` keeps only the
rectangle around the True pixels, packed 8 pixels to a byte (``np.packbits`` along rows: a
12-MP rectangle is 1.5 MB, packed or unpacked in ~0.6 ms on this machine), and makes the
crop and the photo-size array on demand (``mask.crop``, ``np.asarray(mask)``), one object at
a time.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class Mask:
    """A (height, width) bool mask whose True pixels all lie in its ``crop``.

    Attributes:
        height, width: size of the whole mask (the photo), pixels.
        top, left: position of the crop's first row and column in the whole mask.
        crop_shape: (h, w) of the crop; (0, 0) for an empty mask.
        area: number of True pixels.

    ``crop`` (a property) is the (h, w) bool array of rows ``top:top+h`` and columns
    ``left:left+w``, unpacked anew on each access: read it once per use. Made by
    :meth:`from_array` and the segmenter, it is the tight box (first and last row and column
    each hold a True pixel). ``np.asarray(mask)`` gives the (height, width) bool array (a new
    one each time). Masks are immutable.

    Args:
        height, width, top, left: as the attributes.
        crop: (h, w) bool array (copied, packed).

    Raises:
        ValueError: ``crop`` is not a 2-D bool array, or does not fit in the mask at
            (top, left).
    """

    __slots__ = ("height", "width", "top", "left", "crop_shape", "area", "_bits")

    def __init__(self, height: int, width: int, top: int, left: int, crop: np.ndarray) -> None:
        if crop.ndim != 2 or crop.dtype != bool:
            raise ValueError(f"crop must be a 2-D bool array, got {crop.ndim}-D {crop.dtype}")
        if not (0 <= top and top + crop.shape[0] <= height
                and 0 <= left and left + crop.shape[1] <= width):  # fmt: skip
            raise ValueError(
                f"crop {crop.shape} at ({top}, {left}) is outside the ({height}, {width}) mask"
            )
        values = (int(height), int(width), int(top), int(left), (crop.shape[0], crop.shape[1]),
                  int(np.count_nonzero(crop)), np.packbits(crop, axis=1))  # fmt: skip
        for name, value in zip(self.__slots__, values, strict=True):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"Mask is immutable (cannot set {name!r})")

    @property
    def crop(self) -> np.ndarray:
        """The (h, w) bool crop (new array, 1 byte per pixel)."""
        return np.unpackbits(self._bits, axis=1, count=self.crop_shape[1]).view(bool)

    def crop_sample(self, rows: slice, cols: slice) -> np.ndarray:
        """``crop[rows, cols]`` (a new bool array), unpacking only the rows it keeps: a
        regular sample of a large mask (slices with a step) for ~1/step² of the cost of
        ``crop``."""
        picked = np.unpackbits(self._bits[rows], axis=1, count=self.crop_shape[1])
        return picked[:, cols].view(bool)

    @property
    def nbytes(self) -> int:
        """Bytes the mask's pixels take while kept: (h x ceil(w / 8))."""
        return int(self._bits.nbytes)

    def __repr__(self) -> str:
        return (f"Mask(shape={self.shape}, top={self.top}, left={self.left}, "
                f"crop_shape={self.crop_shape}, area={self.area})")  # fmt: skip

    @classmethod
    def from_array(cls, array: np.ndarray) -> Mask:
        """The mask of a (H, W) array (bool, or nonzero = True), cropped to its tight box.

        Raises:
            ValueError: ``array`` is not two-dimensional.
        """
        array = np.asarray(array)
        if array.ndim != 2:
            raise ValueError(f"mask must be 2-D (H, W), got shape {array.shape}")
        return tight(array.astype(bool, copy=False), 0, 0, array.shape)

    @classmethod
    def empty(cls, height: int, width: int) -> Mask:
        """An all-False (height, width) mask."""
        return cls(height, width, 0, 0, np.zeros((0, 0), dtype=bool))

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width), as a photo-size array's ``shape``."""
        return self.height, self.width

    @property
    def slices(self) -> tuple[slice, slice] | None:
        """(rows, cols) of ``crop`` in the whole mask; None for an empty mask."""
        h, w = self.crop_shape
        if h * w == 0:
            return None
        return slice(self.top, self.top + h), slice(self.left, self.left + w)

    @property
    def box(self) -> tuple[float, float, float, float]:
        """Tight box (x0, y0, x1, y1) in pixels, x1/y1 exclusive; (0, 0, 0, 0) when empty.
        Exact for a tight ``crop`` (as made here and by the segmenter)."""
        h, w = self.crop_shape
        if h * w == 0:
            return (0.0, 0.0, 0.0, 0.0)
        return (float(self.left), float(self.top), float(self.left + w), float(self.top + h))

    def to_array(self) -> np.ndarray:
        """The (height, width) bool array (new, 1 byte per pixel)."""
        return self.region(0, 0, self.height, self.width)

    def region(self, top: int, left: int, bottom: int, right: int) -> np.ndarray:
        """Rows ``top:bottom`` and columns ``left:right`` of the whole mask, (bottom - top,
        right - left) bool (new), without making the whole mask.

        Raises:
            ValueError: the region is not inside the (height, width) mask.
        """
        if not (0 <= top <= bottom <= self.height and 0 <= left <= right <= self.width):
            raise ValueError(f"region {(top, left, bottom, right)} is outside {self.shape}")
        out = np.zeros((bottom - top, right - left), dtype=bool)
        h, w = self.crop_shape
        y0, y1 = max(self.top, top), min(self.top + h, bottom)
        x0, x1 = max(self.left, left), min(self.left + w, right)
        if y0 < y1 and x0 < x1:
            rows = self._bits[y0 - self.top : y1 - self.top]
            crop = np.unpackbits(rows, axis=1, count=w).view(bool)
            out[y0 - top : y1 - top, x0 - left : x1 - left] = crop[
                :, x0 - self.left : x1 - self.left
            ]
        return out

    def resized(self, height: int, width: int) -> Mask:
        """The mask scaled to (height, width) by nearest neighbour (each new pixel takes the
        value of the old pixel its centre falls in), made from the crop alone.

        Raises:
            ValueError: a size below 1.
        """
        if height < 1 or width < 1:
            raise ValueError(f"size must be at least 1x1, got {(height, width)}")
        h, w = self.crop_shape
        if h * w == 0:
            return Mask.empty(height, width)
        sy, sx = height / self.height, width / self.width
        top, left = int(self.top * sy), int(self.left * sx)
        bottom = min(height, int(np.ceil((self.top + h) * sy)))
        right = min(width, int(np.ceil((self.left + w) * sx)))
        # Centre of each new pixel, in old pixels, relative to the crop.
        rows = np.floor((np.arange(top, bottom) + 0.5) / sy).astype(int) - self.top
        cols = np.floor((np.arange(left, right) + 0.5) / sx).astype(int) - self.left
        rows_ok, cols_ok = (rows >= 0) & (rows < h), (cols >= 0) & (cols < w)
        region = np.zeros((len(rows), len(cols)), dtype=bool)
        crop = self.crop
        region[np.ix_(rows_ok, cols_ok)] = crop[np.ix_(rows[rows_ok], cols[cols_ok])]
        return tight(region, top, left, (height, width))

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        full = self.to_array()
        return full if dtype is None else full.astype(dtype, copy=False)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mask):
            return NotImplemented
        return self.shape == other.shape and np.array_equal(self.to_array(), other.to_array())

    def __reduce__(self) -> tuple[Any, ...]:
        return Mask, (self.height, self.width, self.top, self.left, self.crop)


def tight(region: np.ndarray, top: int, left: int, size: tuple[int, int]) -> Mask:
    """The :class:`Mask` of a bool ``region`` placed at (top, left) of a mask of ``size``
    (H, W), False elsewhere, cropped to the tight box of its True pixels (a copy).

    Raises:
        ValueError: ``region`` does not fit inside ``size`` at (top, left).
    """
    height, width = size
    rows = np.flatnonzero(region.any(axis=1))
    if rows.size == 0:
        return Mask.empty(height, width)
    cols = np.flatnonzero(region.any(axis=0))
    crop = region[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]  # Mask packs a copy
    return Mask(height, width, top + int(rows[0]), left + int(cols[0]), crop)
