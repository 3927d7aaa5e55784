"""The overlay a child sees: photo size, objects tinted and outlined, labels readable."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

from models.render.overlay import (
    OVERLAY_JPEG_QUALITY,
    TINT_ALPHA,
    encode_jpeg,
    encode_png,
    label_text,
    render_cutout,
    render_overlay,
)
from models.render.palette import PALETTE, color_for, hex_color
from models.result import ObjectResult
from models.segment.mask import Mask


def _disc(shape: tuple[int, int], centre: tuple[int, int], radius: int) -> np.ndarray:
    mask = np.zeros(shape, dtype=np.uint8)
    cv2.circle(mask, centre, radius, 1, -1)
    return mask.astype(bool)


def _object(mask: np.ndarray, label: str, index: int, score: float = 0.87) -> ObjectResult:
    box = Mask.from_array(mask).box
    return ObjectResult(label, score, box, mask, int(mask.sum()), color_for(index))


@pytest.fixture
def photo() -> Image.Image:
    """A plain grey 640x400 photo, so tint and contour pixels are easy to tell apart."""
    return Image.new("RGB", (640, 400), (128, 128, 128))


def test_overlay_has_photo_size_and_colours_the_objects(photo):
    cat = _disc((400, 640), (200, 200), 120)
    ball = _disc((400, 640), (520, 120), 50)
    objects = [_object(cat, "cat", 0, 0.87), _object(ball, "ball", 1, 0.52)]
    out = render_overlay(photo, objects)
    assert out.size == photo.size and out.mode == "RGB"
    pixels = np.asarray(out).astype(int)
    for obj, (cx, cy) in zip(objects, [(140, 250), (520, 150)], strict=True):
        expected = np.round(128 * (1 - TINT_ALPHA) + np.array(obj.color) * TINT_ALPHA)
        assert np.abs(pixels[cy, cx] - expected).max() <= 1, "object pixel tinted in its colour"
    assert tuple(pixels[390, 10]) == (128, 128, 128), "background far from objects untouched"


def test_contour_is_drawn_in_the_objects_colour(photo):
    mask = _disc((400, 640), (320, 200), 150)
    obj = _object(mask, "object 1", 2)
    pixels = np.asarray(render_overlay(photo, [obj]))
    edge = mask & ~cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    on_edge = pixels[edge]
    share = np.mean(np.all(on_edge == np.array(obj.color), axis=1))
    assert share > 0.9, f"only {share:.0%} of the mask's edge is outlined"


def test_labels_are_drawn_in_white_on_the_objects_colour(photo):
    mask = _disc((400, 640), (320, 200), 150)
    pixels = np.asarray(render_overlay(photo, [_object(mask, "cat", 0)]))
    near = pixels[150:250, 220:420].reshape(-1, 3)
    assert np.any(np.all(near == 255, axis=1)), "white label text near the object centre"
    assert np.any(np.all(near == np.array(color_for(0)), axis=1)), "label box in the colour"


def test_label_text_depends_on_the_mode():
    mask = np.ones((4, 4), dtype=bool)
    assert label_text(_object(mask, "cat", 0, 0.8712)) == "cat 0.87"
    assert label_text(_object(mask, "object 12", 0, 0.5)) == "12"


def test_photo_without_objects_is_returned_unchanged(photo):
    out = render_overlay(photo, [])
    assert np.array_equal(np.asarray(out), np.asarray(photo))


def test_mask_of_the_wrong_size_is_refused(photo):
    with pytest.raises(ValueError, match="mask shape"):
        render_overlay(photo, [_object(np.ones((10, 10), dtype=bool), "cat", 0)])


def test_encode_png_round_trips(photo):
    data = encode_png(render_overlay(photo, [_object(_disc((400, 640), (50, 50), 30), "x", 0)]))
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    decoded = Image.open(io.BytesIO(data))
    assert decoded.format == "PNG" and decoded.size == photo.size


def test_encode_jpeg_is_a_baseline_444_jpeg_close_to_the_overlay(photo):
    """The stored overlay: a baseline JPEG of the overlay's size, chroma not subsampled
    (4:4:4), its pixels within JPEG's small error of the drawn ones."""
    overlay = render_overlay(photo, [_object(_disc((400, 640), (50, 50), 30), "x", 0)])
    data = encode_jpeg(overlay)
    assert OVERLAY_JPEG_QUALITY == 90
    assert data.startswith(b"\xff\xd8\xff")
    decoded = Image.open(io.BytesIO(data))
    assert decoded.format == "JPEG" and decoded.mode == "RGB" and decoded.size == photo.size
    assert not decoded.info.get("progressive") and JpegImagePlugin.get_sampling(decoded) == 0
    error = np.abs(np.asarray(decoded, dtype=np.int16) - np.asarray(overlay, dtype=np.int16))
    assert error.mean() < 2


def test_encode_jpeg_keeps_a_one_pixel_coloured_line():
    """A 1-px red line on white stays red: 4:2:0 would average its colour with the white
    column beside it (red 142 of 255 at quality 90, pink, not red)."""
    canvas = np.full((64, 64, 3), 255, dtype=np.uint8)
    canvas[:, 31] = (255, 0, 0)
    decoded = np.asarray(Image.open(io.BytesIO(encode_jpeg(Image.fromarray(canvas)))))
    red, green, blue = (int(v) for v in decoded[32, 31])
    assert red > 230 and green < 30 and blue < 30, (red, green, blue)
    assert decoded[32, 33].min() > 230  # white stays white two columns away


def test_encode_jpeg_refuses_an_image_with_alpha():
    """JPEG has no alpha: an RGBA image (a cut-out) is refused by Pillow, not flattened."""
    with pytest.raises(OSError):
        encode_jpeg(Image.new("RGBA", (8, 8), (255, 0, 0, 128)))


def _relative_luminance(color: tuple[int, int, int]) -> float:
    """WCAG 2.x relative luminance of an sRGB colour."""
    channels = []
    for value in color:
        c = value / 255
        channels.append(c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4)
    r, g, b = channels
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


@pytest.mark.parametrize("color", PALETTE, ids=hex_color)
def test_palette_contrast(color):
    """White label text on every palette colour meets WCAG's 3:1 large-text contrast."""
    ratio = 1.05 / (_relative_luminance(color) + 0.05)
    assert ratio >= 3.0


def test_palette_colours_are_distinct_and_cycle():
    assert len(set(PALETTE)) == len(PALETTE)
    assert color_for(len(PALETTE)) == color_for(0)
    assert hex_color((255, 0, 16)) == "#ff0010"


def test_unnamed_objects_show_a_question_mark_and_scores_are_optional():
    mask = np.zeros((10, 10), dtype=bool)
    unsure = ObjectResult("something?", 0.9, (0, 0, 1, 1), mask, 0, (0, 0, 0), named=False)
    assert label_text(unsure) == "?"
    assert label_text(_object(mask, "cat", 0, 0.8712), scores=False) == "cat"


def test_cutout_is_the_objects_box_with_transparent_background():
    photo = Image.new("RGB", (64, 48), (10, 200, 30))
    mask = _disc((48, 64), (30, 20), 8)
    obj = ObjectResult("ball", 0.9, Mask.from_array(mask).box, mask, int(mask.sum()), (0, 0, 0))
    cutout = render_cutout(photo, obj)
    x0, y0, x1, y1 = (int(v) for v in obj.box)
    assert cutout.mode == "RGBA" and cutout.size == (x1 - x0, y1 - y0)
    pixels = np.asarray(cutout)
    assert np.array_equal(pixels[..., 3] == 255, mask[y0:y1, x0:x1])
    assert (pixels[..., :3][mask[y0:y1, x0:x1]] == (10, 200, 30)).all()
    empty = ObjectResult("something?", 0.0, (0, 0, 0, 0), np.zeros((48, 64), bool), 0, (0, 0, 0))
    assert render_cutout(photo, empty).size == (1, 1)


def test_preview_is_the_overlay_at_screen_size_without_labels():
    from models.render.overlay import render_preview

    photo = Image.new("RGB", (3000, 2000), (120, 120, 120))
    mask = np.zeros((2000, 3000), dtype=bool)
    mask[500:1500, 1000:2500] = True
    obj = ObjectResult("cat", 0.9, Mask.from_array(mask).box, mask, int(mask.sum()), (255, 0, 0))
    picture = render_preview(photo, [obj], long_side=600)
    assert picture.size == (600, 400)
    pixels = np.asarray(picture)
    inside, outside = pixels[200, 300], pixels[20, 20]
    assert inside[0] > inside[1] + 50, "tinted in the object's colour"
    assert tuple(outside) == (120, 120, 120)
    # No label: the middle of the object is tint only (a label would put white text there).
    assert not (pixels[150:250, 250:350] == 255).all(axis=-1).any()
    small = Image.new("RGB", (300, 200))
    assert render_preview(small, [], long_side=600).size == (300, 200)
