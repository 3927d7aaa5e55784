"""The main colour of an object, as a word a child knows: one of the eleven basic colour terms
of English (Berlin & Kay, *Basic Color Terms*, 1969): black, white, grey, red, orange, yellow,
green, blue, purple, pink, brown.

How a mask's pixels become a word:

1. White balance for the whole photo by Shades of Grey (Finlayson & Trezzi, "Shades of Gray
   and Colour Constancy", 2004; Minkowski norm p = 6, between grey-world's p = 1 and
   white-patch's p = infinity): the illuminant is estimated from the photo and each channel
   scaled to neutralise it. The gains are clipped to [0.75, 1.33] so that a photo mostly of one
   colour (a lawn) is not pushed towards grey.
2. The object's pixels (at most ``MAX_PIXELS``, a regular subsample of its box's rows and
   columns, read through Pillow without copying the photo) in CIELAB (sRGB, D65; the
   formulas of IEC 61966-2-1 and CIE 15), where distances follow perceived differences far
   better than in RGB.
3. Shadows and highlights: the darkest ``SHADOW_SHARE`` and brightest ``HIGHLIGHT_SHARE`` of
   the pixels by lightness are left out, so a shaded side does not turn a red ball brown and
   a reflection does not make it white.
4. Each pixel is achromatic when its chroma C* is below ``ACHROMATIC_CHROMA`` (then black,
   grey or white by lightness), else takes the term of its nearest prototype colour (CIE76
   distance). A white or grey object half in shadow is judged by its lit part: achromatic
   lightness is read at the 80th percentile.
5. The term with the most pixels wins if it holds at least ``MIN_SHARE`` of them; a
   many-coloured object (a striped shirt) gets no colour word rather than a wrong one.

The prototypes are typical sRGB renderings of each term (CSS named colours where one fits,
e.g. gold, forestgreen, royalblue, saddlebrown), not measured focal colours; the tests check
them on synthetic patches under colour casts and shadows and on the shared photos.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from models.segment.mask import Mask

TERMS = ("black", "white", "grey", "red", "orange", "yellow", "green", "blue", "purple", "pink",
         "brown")
#: Pixels looked at per object. The winning term's share from a sample of 5,000 has a
#: binomial standard error of at most 0.5 / sqrt(5000) = 0.7 percentage points, small beside
#: the ``MIN_SHARE`` it is compared with; each object then costs ~5 ms here (2-core EPYC).
MAX_PIXELS = 5_000
SHADOW_SHARE, HIGHLIGHT_SHARE = 0.2, 0.03
ACHROMATIC_CHROMA = 12.0
MIN_SHARE = 0.4
GAIN_RANGE = (0.75, 1.33)
MINKOWSKI_P = 6

#: sRGB prototypes of the chromatic terms (several per term: light, dark, saturated).
_PROTOTYPES: dict[str, tuple[tuple[int, int, int], ...]] = {
    "red": ((255, 0, 0), (200, 30, 30), (178, 34, 34), (220, 20, 60), (150, 20, 25)),
    "orange": ((255, 140, 0), (255, 165, 0), (240, 100, 30), (230, 120, 50)),
    "yellow": ((255, 215, 0), (255, 255, 0), (240, 230, 60), (250, 235, 120)),
    "green": ((0, 128, 0), (34, 139, 34), (50, 205, 50), (60, 180, 75), (107, 142, 35),
              (144, 238, 144), (0, 90, 40)),
    "blue": ((0, 0, 255), (30, 80, 220), (65, 105, 225), (0, 120, 200), (135, 206, 235),
             (0, 40, 120), (70, 130, 180)),
    "purple": ((128, 0, 128), (148, 0, 211), (110, 50, 160), (186, 85, 211), (90, 40, 120)),
    "pink": ((255, 192, 203), (255, 105, 180), (240, 130, 170), (255, 160, 190)),
    "brown": ((139, 69, 19), (160, 82, 45), (120, 80, 50), (101, 67, 33), (150, 110, 70)),
}


@dataclass(frozen=True)
class ColorName:
    """An object's main colour: ``term`` (one of ``TERMS``) and ``share``, the fraction 0-1
    of its judged pixels that have it."""

    term: str
    share: float


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """CIELAB (D65 white) of sRGB colours.

    Args:
        rgb: (..., 3) sRGB values, uint8 0-255 or float 0-1 (floats may exceed 1 after white
            balance; they are clipped).

    Returns:
        (..., 3) float32: L* 0-100, a*, b* (about -128..127).
    """
    values = np.asarray(rgb, dtype=np.float32)
    if np.asarray(rgb).dtype == np.uint8:
        values = values / 255.0
    values = np.clip(values, 0.0, 1.0)
    linear = np.where(values <= 0.04045, values / 12.92, ((values + 0.055) / 1.055) ** 2.4)
    matrix = np.array([[0.4124564, 0.3575761, 0.1804375],
                       [0.2126729, 0.7151522, 0.0721750],
                       [0.0193339, 0.1191920, 0.9503041]], dtype=np.float32)
    xyz = linear @ matrix.T / np.array([0.95047, 1.0, 1.08883], dtype=np.float32)
    eps, kappa = 216 / 24389, 24389 / 27
    f = np.where(xyz > eps, np.cbrt(xyz), (kappa * xyz + 16) / 116)
    lab = np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]),
                    200 * (f[..., 1] - f[..., 2])], axis=-1)
    return lab.astype(np.float32)


_PROTO_TERMS = np.array([TERMS.index(term) for term, colours in _PROTOTYPES.items()
                         for _ in colours])
_PROTO_LAB = srgb_to_lab(np.array([c for colours in _PROTOTYPES.values() for c in colours],
                                  dtype=np.uint8))


def white_balance_gains(photo: np.ndarray | Image.Image) -> np.ndarray:
    """Per-channel gains that neutralise the photo's illuminant (Shades of Grey, p = 6), from
    a regular sample of about 250,000 of its pixels.

    Args:
        photo: (H, W, 3) uint8 RGB array, or an RGB PIL image (sampled by Pillow, without
            copying the whole photo into an array).

    Returns:
        (3,) float32 gains for R, G, B, each within ``GAIN_RANGE``; multiply 0-1 values.

    Raises:
        ValueError: not an (H, W, 3) array or an RGB image.
    """
    height, width = _size_of(photo)
    step = max(1, int(np.sqrt(height * width / 250_000)))
    rows, cols = height // step, width // step
    sample = _sample(photo, 0, 0, rows, cols, step, step).reshape(-1, 3)
    sample = sample.astype(np.float32) / 255.0
    norm = np.mean(sample ** MINKOWSKI_P, axis=0) ** (1 / MINKOWSKI_P)
    norm = np.maximum(norm, 1e-3)
    gains = norm.mean() / norm
    return np.clip(gains, *GAIN_RANGE).astype(np.float32)


def _size_of(photo: np.ndarray | Image.Image) -> tuple[int, int]:
    """(height, width) of an (H, W, 3) uint8 array or an RGB PIL image; ValueError else."""
    if isinstance(photo, Image.Image):
        if photo.mode != "RGB":
            raise ValueError(f"expected an RGB image, got mode {photo.mode}")
        return photo.height, photo.width
    if photo.ndim != 3 or photo.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB array, got shape {photo.shape}")
    return photo.shape[0], photo.shape[1]


def _sample(photo: np.ndarray | Image.Image, top: int, left: int, rows: int, cols: int,
            step_y: int, step_x: int) -> np.ndarray:
    """The (rows, cols, 3) uint8 pixels at (top + step_y // 2 + i * step_y, left + step_x // 2
    + j * step_x): the centre of each step_y x step_x block. For a PIL image, Pillow's
    nearest-neighbour resize of that box picks exactly these pixels (tested)."""
    if isinstance(photo, Image.Image):
        box = (left, top, left + cols * step_x, top + rows * step_y)
        return np.asarray(photo.resize((cols, rows), Image.Resampling.NEAREST, box=box))
    oy, ox = top + step_y // 2, left + step_x // 2
    return photo[oy:oy + rows * step_y:step_y, ox:ox + cols * step_x:step_x]


def pixel_terms(lab: np.ndarray) -> np.ndarray:
    """The basic colour term of each pixel, as an index into ``TERMS``.

    Args:
        lab: (N, 3) float32 CIELAB.

    Returns:
        (N,) int64 indices; achromatic pixels (C* < ``ACHROMATIC_CHROMA``) are black
        (L* < 25), white (L* > 78) or grey.
    """
    chroma = np.hypot(lab[:, 1], lab[:, 2])
    distances = ((lab[:, None, :] - _PROTO_LAB[None, :, :]) ** 2).sum(axis=2)
    terms = _PROTO_TERMS[np.argmin(distances, axis=1)]
    grey = np.where(lab[:, 0] < 25, TERMS.index("black"),
                    np.where(lab[:, 0] > 78, TERMS.index("white"), TERMS.index("grey")))
    return np.where(chroma < ACHROMATIC_CHROMA, grey, terms)


def main_color(photo: np.ndarray | Image.Image, mask: Mask, gains: np.ndarray | None = None
               ) -> ColorName | None:
    """The main colour of the object ``mask`` covers in ``photo``.

    Args:
        photo: (H, W, 3) uint8 RGB array or RGB PIL image, the photo the mask is of.
        mask: the object's mask (photo size, :class:`models.segment.mask.Mask`).
        gains: the photo's :func:`white_balance_gains` (computed if None; pass them when
            naming several objects of one photo).

    Returns:
        The winning term and its share, or None: fewer than 20 pixels, or no term holds
        ``MIN_SHARE`` of them.

    Raises:
        ValueError: the mask is not of the photo's size, or the photo is not RGB.
    """
    size = _size_of(photo)
    if mask.shape != size:
        raise ValueError(f"mask {mask.shape} is not of the photo's size {size}")
    if mask.slices is None:  # an empty mask
        return None
    # A regular 2-D sample (the centre pixel of each stride x stride block of the mask's box,
    # leaving at least MAX_PIXELS of the object's pixels), so a 12-megapixel object's pixels
    # are never all read; then every step-th of those.
    stride = max(1, int(np.sqrt(mask.area / MAX_PIXELS)))
    height, width = mask.crop_shape
    step_y, step_x = min(stride, height), min(stride, width)
    rows, cols = height // step_y, width // step_x
    inside = mask.crop_sample(slice(step_y // 2, step_y // 2 + rows * step_y, step_y),
                              slice(step_x // 2, step_x // 2 + cols * step_x, step_x))
    pixels = _sample(photo, mask.top, mask.left, rows, cols, step_y, step_x)[inside]
    if len(pixels) < 20:
        return None
    step = max(1, len(pixels) // MAX_PIXELS)
    pixels = pixels[::step]
    if gains is None:
        gains = white_balance_gains(photo)
    lab = srgb_to_lab(pixels.astype(np.float32) / 255.0 * gains)
    order = np.argsort(lab[:, 0], kind="stable")  # by rank, not value: ties are common
    lab = lab[order[int(len(order) * SHADOW_SHARE):int(len(order) * (1 - HIGHLIGHT_SHARE))]]
    if len(lab) < 20:
        return None
    terms = pixel_terms(lab)
    counts = np.bincount(terms, minlength=len(TERMS))
    achromatic = [TERMS.index(t) for t in ("black", "white", "grey")]
    chroma = np.hypot(lab[:, 1], lab[:, 2])
    if counts[achromatic].sum() / len(terms) >= MIN_SHARE and np.median(chroma) < \
            ACHROMATIC_CHROMA:
        # Mostly colourless: judged by its lit part, so a white thing in shade stays white.
        lit = float(np.quantile(lab[chroma < ACHROMATIC_CHROMA, 0], 0.8))
        term = "black" if lit < 25 else "white" if lit > 78 else "grey"
        return ColorName(term, float(counts[achromatic].sum() / len(terms)))
    best = int(np.argmax(counts))
    share = float(counts[best] / len(terms))
    return ColorName(TERMS[best], share) if share >= MIN_SHARE else None


#: Labels that name a substance, not one thing: "green grass", not "a green grass".
MASS_NOUNS = frozenset({"grass", "sky", "water", "sand", "snow", "food", "bread", "rice",
                        "cheese", "hair", "fur", "paper", "wood", "juice", "milk", "soup"})


def describe(label: str, color: str | None) -> str:
    """What is said when a child taps a named object: "a yellow duck", "an orange ball",
    "green grass", or the label alone when it has no colour word.

    Args:
        label: the object's name (lower case, as the models give it).
        color: its colour term (``ColorName.term``) or None.
    """
    if not color:
        return label
    words = f"{color} {label}"
    if label in MASS_NOUNS or label.endswith("s") and not label.endswith("ss"):
        return words  # a substance, or a plural ("red cars")
    return ("an " if words[0] in "aeiou" else "a ") + words
