"""Object colours: bright, distinct, and dark enough for white label text."""

from __future__ import annotations

# Saturated hues in the spirit of Sasha Trubetskoy's "List of 20 simple, distinct colors"
# (https://sashamaps.net/docs/resources/20-colors/), darkened where needed so white text on
# each has a WCAG 2.x contrast ratio of at least 3:1 (the large-text threshold); see
# tests/models/render/test_overlay.py::test_palette_contrast.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75),  # red
    (0, 130, 200),  # blue
    (46, 139, 37),  # green
    (200, 80, 0),  # orange
    (145, 30, 180),  # purple
    (0, 128, 128),  # teal
    (190, 30, 160),  # magenta
    (128, 90, 20),  # brown
    (0, 0, 128),  # navy
    (128, 0, 0),  # maroon
    (85, 107, 47),  # olive
    (90, 90, 90),  # grey
)


def color_for(index: int) -> tuple[int, int, int]:
    """RGB (0-255) colour of the object at ``index`` (0-based), cycling through ``PALETTE``."""
    return PALETTE[index % len(PALETTE)]


def hex_color(color: tuple[int, int, int]) -> str:
    """``(r, g, b)`` 0-255 -> ``"#rrggbb"``."""
    r, g, b = color
    return f"#{r:02x}{g:02x}{b:02x}"
