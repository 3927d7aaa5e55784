"""Decoding and normalising uploaded photos with Pillow (and pillow-heif for iPhone HEIC)."""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

#: Formats accepted after decoding; the declared type and file extension are never trusted.
ALLOWED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "HEIF", "HEIC", "MPO"})
#: Decompression-bomb guard: more pixels than this are refused before decoding (about 50 MP).
MAX_PIXELS = 50_000_000
#: Smallest side accepted, in pixels: smaller images hold nothing a child could name.
MIN_SIDE = 32
#: Largest aspect ratio accepted (long side / short side).
MAX_ASPECT = 8.0
#: Long side of the stored thumbnail, in pixels.
THUMB_SIDE = 480

#: Active content hidden inside an image file (image/HTML, image/PHP, image/PDF "polyglots").
#: Each pattern is long enough (6+ fixed bytes) that compressed image data matches it by chance
#: less than once in ~10^5 photos of 5 MB, while phones' own extras (XMP, ICC, motion-photo
#: MP4 after the JPEG end) never contain it. Archives are found structurally (zipfile).
POLYGLOT_PATTERN = re.compile(
    rb"<script|<iframe|<html[\s>]|<svg\s+xmlns|<!doctype\s+html|<\?php\s|javascript:|%pdf-1\.",
    re.IGNORECASE)

_heif_registered = False


class ImageRejected(ValueError):
    """The upload is not a photo we can use; ``str(exc)`` says why, for the user."""


@dataclass(frozen=True)
class NormalisedPhoto:
    """A decoded upload: ``image`` is RGB, upright, without metadata."""

    image: Image.Image
    jpeg: bytes
    thumb_jpeg: bytes

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels after EXIF orientation and any downscale."""
        return self.image.size


def _register_heif() -> None:
    """Teach Pillow to open HEIC/HEIF (pillow-heif), once per process."""
    global _heif_registered
    if not _heif_registered:
        from pillow_heif import register_heif_opener

        register_heif_opener()
        _heif_registered = True


def _encode_jpeg(image: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality, optimize=True)  # no exif= : metadata dropped
    return buf.getvalue()


def normalise_upload(data: bytes, max_side: int = 4096) -> NormalisedPhoto:
    """Decode an upload and return it upright, RGB, metadata-free, at most ``max_side`` px long.

    Args:
        data: the uploaded file's bytes.
        max_side: photos larger than this on their long side are downscaled (Lanczos).

    Returns:
        The photo as an RGB image (EXIF orientation applied), its JPEG encoding (quality 92,
        no EXIF/XMP/ICC) and a thumbnail JPEG (``THUMB_SIDE`` px long side).

    Raises:
        ImageRejected: empty, undecodable or truncated data, a polyglot (markup, script or
            a zip archive inside, see ``POLYGLOT_PATTERN``), a format outside
            ``ALLOWED_FORMATS``, more than ``MAX_PIXELS`` pixels, a side under ``MIN_SIDE``
            or an aspect ratio over ``MAX_ASPECT``.
    """
    if not data:
        raise ImageRejected("The file is empty.")
    if POLYGLOT_PATTERN.search(data) or zipfile.is_zipfile(io.BytesIO(data)):
        raise ImageRejected("This file hides something that is not a picture, so we did not "
                            "keep it. Please send the photo straight from the camera.")
    _register_heif()
    try:
        with Image.open(io.BytesIO(data)) as probe:
            fmt = (probe.format or "").upper()
            width, height = probe.size
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ImageRejected("This file is not a photo we can read. Please send a JPEG, PNG, "
                            "WebP or HEIC picture.") from exc
    if fmt not in ALLOWED_FORMATS:
        raise ImageRejected(f"{fmt or 'This'} images are not accepted. Please send a JPEG, PNG, "
                            "WebP or HEIC picture.")
    if width * height > MAX_PIXELS:
        raise ImageRejected(f"This picture is too big ({width}x{height} pixels).")
    if min(width, height) < MIN_SIDE:
        raise ImageRejected(f"This picture is too small ({width}x{height} pixels).")
    if max(width, height) / min(width, height) > MAX_ASPECT:
        raise ImageRejected(f"This picture is too long and thin ({width}x{height} pixels).")
    try:
        Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # Pillow's own decompression-bomb guard, same limit
        with Image.open(io.BytesIO(data)) as img:
            img.seek(0)  # animated images: first frame only
            img.load()
            upright = ImageOps.exif_transpose(img)
            image = _to_rgb(upright)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ImageRejected("This photo is damaged or incomplete. Please try again.") from exc
    if max(image.size) > max_side:
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    thumb = image.copy()
    thumb.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.LANCZOS)
    return NormalisedPhoto(image=image, jpeg=_encode_jpeg(image, 92),
                           thumb_jpeg=_encode_jpeg(thumb, 85))


def _to_rgb(image: Image.Image) -> Image.Image:
    """Return ``image`` as 8-bit RGB: alpha composited on white; CMYK, 16-bit, palette converted."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        return image.point(lambda v: v / 256).convert("L").convert("RGB")
    return image.convert("RGB")
