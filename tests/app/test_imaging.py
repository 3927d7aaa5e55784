"""Upload decoding: what is accepted, how it is normalised, what is refused."""

import io

import pytest
from PIL import Image

from app.imaging import ImageRejected, normalise_upload
from tests.conftest import photo_bytes


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kwargs)
    return buf.getvalue()


def test_real_photo_keeps_its_size_and_loses_metadata():
    result = normalise_upload(photo_bytes("bears.jpg"))
    original = Image.open(io.BytesIO(photo_bytes("bears.jpg")))
    assert result.size == original.size and result.image.mode == "RGB"
    stored = Image.open(io.BytesIO(result.jpeg))
    assert stored.size == original.size and not stored.getexif()
    assert "icc_profile" not in stored.info
    assert max(Image.open(io.BytesIO(result.thumb_jpeg)).size) == 480


def test_gps_exif_is_stripped_and_orientation_applied():
    image = Image.new("RGB", (120, 80), "blue")
    exif = image.getexif()
    exif[0x0112] = 8
    exif[0x8825] = {1: "N", 2: (51.0, 30.0, 0.0)}  # GPS IFD
    result = normalise_upload(encode(image, "JPEG", exif=exif))
    assert result.size == (80, 120)
    assert not Image.open(io.BytesIO(result.jpeg)).getexif()


@pytest.mark.parametrize("mode", ["RGBA", "P", "CMYK", "I;16", "L", "LA"])
def test_unusual_modes_become_rgb(mode):
    image = Image.new("RGB", (64, 48), (10, 200, 30)).convert(mode)
    fmt = "TIFF" if mode == "CMYK" else "PNG"
    fmt = "JPEG" if mode == "CMYK" else fmt
    assert normalise_upload(encode(image, fmt)).image.mode == "RGB"


def test_alpha_is_composited_on_white():
    image = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    assert normalise_upload(encode(image, "PNG")).image.getpixel((5, 5)) == (255, 255, 255)


def test_large_photo_is_downscaled_to_the_stored_maximum():
    result = normalise_upload(photo_bytes("dog.jpg"), max_side=1000)
    assert max(result.size) == 1000


def test_animated_image_keeps_its_first_frame():
    frames = [Image.new("RGB", (64, 64), c) for c in ("red", "green")]
    data = encode(frames[0], "WEBP", save_all=True, append_images=frames[1:])
    assert normalise_upload(data).image.getpixel((10, 10))[0] > 200


@pytest.mark.parametrize(("data", "reason"), [
    (b"", "empty"),
    (b"hello, this is text", "not a photo"),
    (b"<svg xmlns='http://www.w3.org/2000/svg'></svg>", "not a picture"),  # markup inside
    (photo_bytes()[:3000], "damaged"),
    (encode(Image.new("RGB", (1, 1)), "PNG"), "too small"),
    (encode(Image.new("L", (20000, 40)), "PNG"), "too"),
    (encode(Image.new("RGB", (64, 64)), "GIF"), "not accepted"),
])
def test_bad_uploads_are_refused_with_a_reason(data, reason):
    with pytest.raises(ImageRejected, match=reason):
        normalise_upload(data)
