"""Colour words: the main colour of a mask's pixels, under colour casts and shadows, on
synthetic patches and on the shared photo of coloured letters."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from models.render.color_names import (
    TERMS,
    main_color,
    pixel_terms,
    srgb_to_lab,
    white_balance_gains,
)
from models.segment.mask import Mask
from tests.conftest import PHOTOS

PATCHES = {  # a typical sRGB colour of each term (not one of the prototypes)
    "red": (210, 40, 35), "orange": (245, 130, 20), "yellow": (245, 220, 40),
    "green": (40, 160, 60), "blue": (40, 90, 200), "purple": (120, 40, 150),
    "pink": (250, 150, 190), "brown": (125, 75, 35), "black": (20, 20, 22),
    "white": (245, 245, 240), "grey": (128, 128, 130),
}


def scene(color, background=(200, 200, 200), size=(120, 160)):
    """A photo of one square object of ``color`` on ``background``, and its mask."""
    h, w = size
    photo = np.empty((h, w, 3), dtype=np.uint8)
    photo[:] = background
    inside = np.zeros((h, w), dtype=bool)
    inside[30:90, 40:120] = True
    photo[inside] = color
    return photo, Mask.from_array(inside)


def test_lab_of_known_colours():
    # sRGB white is L*=100, a*=b*=0; pure red is (53.24, 80.09, 67.20) (CIE 15 / IEC 61966-2-1,
    # float32 arithmetic: within 0.05).
    lab = srgb_to_lab(np.array([[255, 255, 255], [255, 0, 0], [0, 0, 0]], dtype=np.uint8))
    np.testing.assert_allclose(lab, [[100, 0, 0], [53.24, 80.09, 67.20], [0, 0, 0]], atol=0.05)


@pytest.mark.parametrize("term", sorted(PATCHES))
def test_each_basic_colour_is_named(term):
    photo, mask = scene(PATCHES[term])
    assert main_color(photo, mask).term == term


@pytest.mark.parametrize("term", ["red", "yellow", "green", "blue", "white"])
def test_a_colour_cast_is_taken_out(term):
    """A warm (tungsten-like) or cool cast over the whole photo: still the same word."""
    photo, mask = scene(PATCHES[term], background=(235, 235, 235))
    for cast in ((1.0, 0.85, 0.62), (0.8, 0.9, 1.0)):
        tinted = np.clip(photo * np.array(cast), 0, 255).astype(np.uint8)
        assert main_color(tinted, mask).term == term, cast


def test_a_lawn_keeps_its_green():
    """A photo mostly of one colour: the white balance's gains are bounded, so the grass
    is not pushed towards grey."""
    photo, mask = scene(PATCHES["green"], background=(60, 150, 60))
    gains = white_balance_gains(photo)
    assert np.all(gains >= 0.75) and np.all(gains <= 1.33)
    assert main_color(photo, mask).term == "green"


@pytest.mark.parametrize("term", ["red", "white", "yellow", "blue"])
def test_a_shadow_over_part_of_the_object_does_not_change_its_word(term):
    photo, mask = scene(PATCHES[term])
    shaded = photo.astype(np.float32)
    shaded[30:90, 40:84] *= 0.45  # 55% of the object in shade: a shaded yellow looks olive
    assert main_color(shaded.astype(np.uint8), mask).term == term


def test_a_many_coloured_object_gets_no_word():
    photo, mask = scene(PATCHES["red"])
    for i, term in enumerate(("red", "green", "blue", "yellow")):
        photo[30:90, 40 + 20 * i:60 + 20 * i] = PATCHES[term]
    assert main_color(photo, mask) is None


def test_tiny_and_empty_masks_get_no_word():
    photo, _ = scene(PATCHES["red"])
    assert main_color(photo, Mask.empty(*photo.shape[:2])) is None
    dot = np.zeros(photo.shape[:2], dtype=bool)
    dot[50, 50:55] = True
    assert main_color(photo, Mask.from_array(dot)) is None
    with pytest.raises(ValueError):
        main_color(photo, Mask.empty(10, 10))


def test_pixel_terms_cover_every_term():
    patches = np.array(list(PATCHES.values()), dtype=np.uint8)
    assert [TERMS[i] for i in pixel_terms(srgb_to_lab(patches))] == list(PATCHES)


# letters.jpg (1920x1920): coloured letters on white; a pixel on each of nine of them (x, y).
LETTERS = {
    (83, 98): "red",        # "A", top left
    (1262, 344): "red",     # "O"
    (4, 367): "orange",     # "B"
    (243, 111): "yellow",   # "C"
    (1494, 291): "yellow",  # "Q"
    (556, 369): "green",    # "R"
    (562, 89): "blue",      # "E"
    (960, 308): "purple",   # "M", dark purple
    (802, 96): "purple",    # "G", violet
}


def letter_masks():
    """Each letter of ``LETTERS`` as the connected non-white region under its point."""
    photo = np.asarray(Image.open(PHOTOS / "letters.jpg").convert("RGB"))
    ink = photo.min(axis=2) < 200
    _, labels = cv2.connectedComponents(ink.astype(np.uint8), connectivity=8)
    masks = {}
    for (x, y), term in LETTERS.items():
        label = labels[y, x]
        assert label, f"({x}, {y}) is not on a letter"
        masks[(x, y)] = (Mask.from_array(labels == label), term)
    return photo, masks


def test_the_letters_photo_colours_are_named():
    photo, masks = letter_masks()
    gains = white_balance_gains(photo)
    named = {point: main_color(photo, mask, gains) for point, (mask, _) in masks.items()}
    assert {p: c.term if c else None for p, c in named.items()} == {
        p: term for p, (_, term) in masks.items()}


def test_what_is_said_puts_the_colour_before_the_name():
    from models.render.color_names import describe

    assert describe("duck", "yellow") == "a yellow duck"
    assert describe("ball", "orange") == "an orange ball"
    assert describe("grass", "green") == "green grass"
    assert describe("cars", "red") == "red cars"
    assert describe("glass", "blue") == "a blue glass"
    assert describe("duck", None) == "duck"


def test_the_service_names_each_objects_colour_and_the_json_says_it():
    from models.result import AnalysisResult, ObjectResult
    from models.service import name_colors

    photo, mask = scene(PATCHES["yellow"])
    duck = ObjectResult(label="duck", score=0.9, box=mask.box, mask=mask, area=mask.area,
                        color=(1, 2, 3), named=True)
    unsure = ObjectResult(label="something?", score=0.9, box=mask.box, mask=mask,
                          area=mask.area, color=(1, 2, 3), named=False)
    timings: dict[str, float] = {}
    name_colors(Image.fromarray(photo), [duck, unsure], timings)
    assert (duck.color_name, unsure.color_name) == ("yellow", "yellow") and "colors" in timings
    doc = AnalysisResult(width=160, height=120, mode="everything", prompt=None,
                         objects=[duck, unsure]).to_json()
    assert [(o["color_name"], o["description"]) for o in doc["objects"]] == [
        ("yellow", "a yellow duck"), ("yellow", "something?")]


def test_a_pil_photo_is_sampled_at_the_same_pixels_as_its_array():
    """Pillow's nearest-neighbour resize of a box picks the same pixels as slicing the array
    (the centre of each block), so both ways give the same gains, term and share exactly: on
    a large photo a large mask is sampled (stride 24), a thin one at every pixel."""
    rng = np.random.default_rng(3)
    photo = rng.integers(0, 256, (2000, 3001, 3), dtype=np.uint8)
    photo[300:1700, 400:2600] = (200, 40, 35)  # a red object with noise in its corner
    photo[300:400, 400:500] = rng.integers(0, 256, (100, 100, 3), dtype=np.uint8)
    image = Image.fromarray(photo)
    assert np.array_equal(white_balance_gains(image), white_balance_gains(photo))
    big = np.zeros(photo.shape[:2], dtype=bool)
    big[300:1700, 400:2600] = True
    thin = np.zeros(photo.shape[:2], dtype=bool)
    thin[1000:1002, 100:2900] = True
    for array in (big, thin):
        mask = Mask.from_array(array)
        gains = white_balance_gains(photo)
        assert main_color(image, mask, gains) == main_color(photo, mask, gains)
    assert main_color(image, Mask.from_array(big)).term == "red"
