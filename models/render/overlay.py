"""Draw the result for a child: each object tinted in its colour, outlined, and named with a
big rounded label (white text on the object's colour). Pillow for text, OpenCV for contours."""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import replace

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from models.result import ObjectResult
from models.segment.mask import Mask

PREVIEW_SIDE = 1024  # long side of render_preview's picture, px (a phone or tablet screen)
OVERLAY_JPEG_QUALITY = 90  # encode_jpeg's quality: the stored overlay of analyses and words
TINT_ALPHA = 0.45  # weight of the object's colour over the photo inside its mask
_NUMBERED = re.compile(r"^object (\d+)$")


def label_text(obj: ObjectResult, *, scores: bool = True) -> str:
    """Text drawn for an object: "3" for an older result's "object 3", "?" for an object that
    is not named with confidence ("something?"), else "cat 0.87" (``scores``) or "cat"."""
    match = _NUMBERED.match(obj.label)
    if match:
        return match.group(1)
    if not obj.named:
        return "?"
    return f"{obj.label} {obj.score:.2f}" if scores else obj.label


def _sizes(width: int, height: int) -> tuple[int, int]:
    """(font size px, contour thickness px) scaled to the photo: 3.5% and 0.25% of the short
    side, at least 14 and 2 px (about 48 px text on a 1365-px-high photo)."""
    short = min(width, height)
    return max(14, round(short * 0.035)), max(2, round(short * 0.0025))


def _label_anchor(mask: Mask, box: Sequence[float]) -> tuple[float, float]:
    """Point deep inside the mask (maximum of the distance transform, computed on the mask
    sampled every ``step`` pixels of the photo, at most 256 samples along the photo's long
    side), so the label sits on the object; the box centre for empty masks."""
    if mask.area == 0:
        x0, y0, x1, y1 = box
        return (x0 + x1) / 2, (y0 + y1) / 2
    step = max(1, int(np.ceil(max(mask.height, mask.width) / 256)))
    # The photo's sampling grid (rows and columns that are multiples of step) inside the crop.
    first_y, first_x = -mask.top % step, -mask.left % step
    small = np.ascontiguousarray(mask.crop[first_y::step, first_x::step]).astype(np.uint8)
    if not small.any():
        ys, xs = np.nonzero(mask.crop)
        return float(xs.mean() + mask.left), float(ys.mean() + mask.top)
    # Padded with one False sample: outside its crop the mask is False.
    dist = cv2.distanceTransform(np.pad(small, 1), cv2.DIST_L2, 3)[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return (float(mask.left + first_x + x * step + step / 2),
            float(mask.top + first_y + y * step + step / 2))  # fmt: skip


def render_overlay(
    image: Image.Image,
    objects: Sequence[ObjectResult],
    *,
    scores: bool = True,
    labels: bool = True,
) -> Image.Image:
    """Return an RGB copy of ``image`` (W x H) with the objects drawn on it.

    Args:
        image: the photo as analysed (RGB, W x H; masks must be (H, W)).
        objects: results; larger objects are painted first so smaller ones stay visible.
        scores: add the score to named labels ("cat 0.87"; grounded mode) or not ("cat";
            everything mode, whose scores are mask quality, not naming confidence).
        labels: draw the labels (False: colours and outlines only, as in a preview).

    Returns:
        RGB PIL image of size W x H: each mask blended with its colour (alpha 0.45; where
        objects overlap, the smaller one's colour), its
        outline drawn in the colour, and a label ("3" in everything mode, "cat 0.87" in
        grounded mode) in a rounded box filled with the colour, white text.

    Raises:
        ValueError: a mask's shape is not (H, W).
    """
    photo = image if image.mode == "RGB" else image.convert("RGB")  # one copy, not two
    width, height = photo.size
    canvas = np.array(photo, dtype=np.uint8)
    font_size, thickness = _sizes(width, height)
    ordered = sorted(objects, key=lambda o: o.area, reverse=True)
    # Which object tints each pixel: the smallest on top (painted last). One blend pass over
    # the photo afterwards; all per-object work is limited to the mask's own box, which keeps
    # a 12-megapixel overlay cheap.
    top = np.zeros((height, width), dtype=np.uint16)  # 0: no object, i + 1: ordered[i]
    boxes = []
    for i, obj in enumerate(ordered):
        if obj.mask.shape != (height, width):
            raise ValueError(f"mask shape {obj.mask.shape} != photo (H, W) {(height, width)}")
        box = obj.mask.slices
        boxes.append(box)
        if box is not None:
            top[box][obj.mask.crop] = i + 1
    # Blend with OpenCV's saturating, rounding addWeighted over the whole photo, then keep it
    # where an object is: the same pixels as a float blend of the masked pixels, twice as
    # fast at 12 megapixels (0.34 s -> 0.16 s).
    if any(box is not None for box in boxes):
        colors = np.array([(0, 0, 0)] + [o.color for o in ordered], dtype=np.uint8)
        blended = cv2.addWeighted(canvas, 1 - TINT_ALPHA, colors[top], TINT_ALPHA, 0)
        np.copyto(canvas, blended, where=(top > 0)[..., None])
    for obj, box in zip(ordered, boxes, strict=True):
        if box is None:
            continue
        contours, _ = cv2.findContours(
            np.ascontiguousarray(obj.mask.crop, dtype=np.uint8), cv2.RETR_EXTERNAL,
            cv2.CHAIN_APPROX_SIMPLE, offset=(box[1].start, box[0].start),
        )  # fmt: skip
        # Simplified to within half the line's width of the mask's edge (Douglas-Peucker,
        # cv2.approxPolyDP): the drawn line still covers the edge, and ragged edges cost far
        # fewer line segments (20 ragged masks at 12 MP: 1.05 s -> 0.64 s).
        contours = [cv2.approxPolyDP(c, thickness / 2, True) for c in contours]
        cv2.drawContours(canvas, contours, -1, tuple(int(c) for c in obj.color), thickness)
    out = Image.fromarray(canvas)
    if not labels:
        return out
    draw = ImageDraw.Draw(out)
    font = ImageFont.load_default(size=font_size)
    placed: list[tuple[float, float, float, float]] = []
    for obj in sorted(objects, key=lambda o: o.area):  # small objects pick their spot first
        _draw_label(draw, font, label_text(obj, scores=scores), obj, (width, height), placed)
    return out


def render_preview(
    image: Image.Image, objects: Sequence[ObjectResult], *, long_side: int = PREVIEW_SIDE
) -> Image.Image:
    """A quick picture of the objects found so far: the photo at screen size (at most
    ``long_side`` px on its long side), each mask tinted and outlined in its colour, no labels
    (everything mode shows it while the names are still being found).

    At 12 megapixels the full overlay costs ~0.6 s; at 1024 px this is a few tens of ms.

    Args:
        image: the photo as analysed (RGB, W x H; masks must be (H, W)).
        objects: the objects, masks at photo size.

    Returns:
        RGB PIL image, the photo's aspect ratio, long side min(``long_side``, photo's).

    Raises:
        ValueError: a mask's shape is not (H, W).
    """
    width, height = image.size
    for obj in objects:
        if obj.mask.shape != (height, width):
            raise ValueError(f"mask shape {obj.mask.shape} != photo (H, W) {(height, width)}")
    scale = min(1.0, long_side / max(width, height))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    scaled = [
        replace(o, mask=o.mask.resized(size[1], size[0]),
                box=tuple(v * scale for v in o.box))  # type: ignore[arg-type]
        for o in objects
    ]  # fmt: skip
    return render_overlay(small, scaled, scores=False, labels=False)


def _draw_label(
    draw: ImageDraw.ImageDraw,
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
    text: str,
    obj: ObjectResult,
    size: tuple[int, int],
    placed: list[tuple[float, float, float, float]],
) -> None:
    """Draw one rounded label centred on the object, nudged down past labels already placed
    and kept inside the photo."""
    width, height = size
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    pad = max(4, (bottom - top) // 3)
    box_w, box_h = right - left + 2 * pad, bottom - top + 2 * pad
    cx, cy = _label_anchor(obj.mask, obj.box)
    x0 = min(max(cx - box_w / 2, 0), max(width - box_w, 0))
    y0 = min(max(cy - box_h / 2, 0), max(height - box_h, 0))
    for _ in range(len(placed)):
        clash = next((p for p in placed if _overlap((x0, y0, x0 + box_w, y0 + box_h), p)), None)
        if clash is None:
            break
        y0 = clash[3] + 2 if clash[3] + 2 + box_h <= height else clash[1] - box_h - 2
        y0 = min(max(y0, 0), max(height - box_h, 0))
    rect = (x0, y0, x0 + box_w, y0 + box_h)
    placed.append(rect)
    draw.rounded_rectangle(
        rect, radius=box_h // 3, fill=tuple(obj.color), outline=(255, 255, 255), width=2
    )
    draw.text((x0 + pad - left, y0 + pad - top), text, font=font, fill=(255, 255, 255))


def _overlap(a: Sequence[float], b: Sequence[float]) -> bool:
    """True if boxes (x0, y0, x1, y1) intersect."""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def render_cutout(image: Image.Image, obj: ObjectResult) -> Image.Image:
    """The object cut out of the photo: an RGBA image of its box, alpha 255 on the mask and 0
    elsewhere.

    Args:
        image: the photo as analysed (W x H; ``obj.mask`` must be (H, W)).
        obj: the object; its box is xyxy photo pixels (x1/y1 exclusive, as ``Mask.box``).

    Returns:
        RGBA PIL image of the box, rounded outwards to whole pixels; a 1x1 transparent image
        when the mask is empty.

    Raises:
        ValueError: the mask's shape is not (H, W).
    """
    width, height = image.size
    mask = obj.mask
    if mask.shape != (height, width):
        raise ValueError(f"mask shape {mask.shape} != photo (H, W) {(height, width)}")
    if mask.area == 0:
        return Image.new("RGBA", (1, 1), (0, 0, 0, 0))
    x0, y0, x1, y1 = obj.box
    left, top = max(0, int(np.floor(x0))), max(0, int(np.floor(y0)))
    right, bottom = min(width, int(np.ceil(x1))), min(height, int(np.ceil(y1)))
    if right <= left or bottom <= top:  # a box that does not hold the mask: use the mask's
        left, top, right, bottom = (int(v) for v in mask.box)
    crop = image.convert("RGB").crop((left, top, right, bottom)).convert("RGBA")
    alpha = Image.fromarray(mask.region(top, left, bottom, right).astype(np.uint8) * 255)
    crop.putalpha(alpha)
    return crop


def encode_png(image: Image.Image) -> bytes:
    """PNG bytes of ``image``, for pictures that need alpha or are small: cut-outs (RGBA) and
    everything mode's preview. zlib level 3: on a 2048x1365 overlay ~10% larger than Pillow's
    default level 6 but ~4x faster (0.27 s vs 1.04 s, measured)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=3)
    return buffer.getvalue()


def encode_jpeg(image: Image.Image, quality: int = OVERLAY_JPEG_QUALITY) -> bytes:
    """Baseline JPEG bytes of ``image`` (RGB, as ``render_overlay`` returns it), Pillow's
    encoder at ``quality`` with 4:4:4 chroma (``subsampling=0``) and no ``optimize`` pass
    (at 12 MP it took 35 -> 97 ms for 2% fewer bytes).

    The overlay of a 12-megapixel photo, on 2 cores: 35 ms and 1.5 MB, where ``encode_png``
    takes 0.63 s and 7.3 MB; the photo itself is stored as JPEG already, so a lossless copy
    of it bought nothing but time and a 5x larger download. 4:4:4 because Pillow's default
    4:2:0 halves the colour resolution: the thin coloured outlines (0.25% of the short side,
    2 px at least) and the labels' white text on their colour would come out smeared and
    washed out.

    Raises:
        OSError: from Pillow, for a mode JPEG cannot hold (RGBA, P, I;16, ...; "L" and
            "CMYK" are written as they are).
    """
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality, subsampling=0)
    return buffer.getvalue()
