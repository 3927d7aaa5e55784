"""Clips are read by content, as displayed, and stored without sound or metadata; every bad
upload is refused with a sentence a parent can read."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from bench.clips import pan_clip, sound_only, write_clip
from models.video.errors import VideoError
from models.video.io import TRANSCODE_SIDE, clean_copy, iter_frames, poster_jpeg, probe_video
from tests.models.conftest import open_photo

GPS = "+48.8584+002.2945/"


def _solid(size: tuple[int, int], n: int, *, marker: bool = False) -> list[np.ndarray]:
    """``n`` grey frames (W, H); with ``marker``, a white square in the top-left corner."""
    w, h = size
    frames = []
    for i in range(n):
        frame = np.full((h, w, 3), 60 + i % 100, dtype=np.uint8)
        if marker:
            frame[: h // 4, : w // 4] = 255
        frames.append(frame)
    return frames


@pytest.fixture(scope="module")
def dog_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 s, 30 fps, 320x240 pan across dog.jpg, with a sound track and a GPS position."""
    path = tmp_path_factory.mktemp("clips") / "dog.mp4"
    pan_clip(path, open_photo("dog.jpg"), audio=True, metadata={"location": GPS})
    return path


def test_probe_reads_a_phone_style_clip(dog_clip: Path) -> None:
    info = probe_video(dog_clip)
    assert (info.width, info.height) == (320, 240)
    assert info.frame_count == 60
    assert info.duration_s == pytest.approx(2.0, abs=0.05)
    assert info.fps == pytest.approx(30.0, rel=0.03)
    assert (info.codec, info.rotation) == ("h264", 0)


def test_clip_is_read_by_content_not_by_its_name(dog_clip: Path, tmp_path: Path) -> None:
    renamed = tmp_path / "holiday.png"
    renamed.write_bytes(dog_clip.read_bytes())
    assert probe_video(renamed).frame_count == 60


def test_clean_copy_drops_sound_and_gps(dog_clip: Path, tmp_path: Path) -> None:
    with av.open(str(dog_clip)) as original:  # the upload has both
        assert original.streams.audio and original.metadata.get("location") == GPS
    copy = clean_copy(dog_clip, tmp_path / "stored.bin")
    assert copy.path == tmp_path / "stored.mp4" and copy.remuxed
    assert not list(tmp_path.glob("*.part"))
    with av.open(str(copy.path)) as stored:
        assert [s.type for s in stored.streams] == ["video"]
        assert "location" not in stored.metadata
        assert all(GPS not in str(v) for v in stored.streams.video[0].metadata.values())
    assert GPS.encode() not in copy.path.read_bytes()
    assert copy.info.frame_count == 60 and (copy.info.width, copy.info.height) == (320, 240)
    first = next(iter_frames(copy.path)).image
    original_first = next(iter_frames(dog_clip)).image
    assert np.array_equal(first, original_first)  # packets copied, not re-encoded


def test_rotation_is_applied_and_kept(tmp_path: Path) -> None:
    # Stored 64x32 landscape with a white top-left corner, displayed turned 90 degrees
    # counter-clockwise (as a phone writes it): displayed 32x64, the corner bottom-left.
    path = write_clip(tmp_path / "turned.mp4", _solid((64, 32), 10, marker=True), rotation=90)
    info = probe_video(path)
    assert (info.width, info.height, info.rotation) == (32, 64, 90)
    frame = next(iter_frames(path)).image
    assert frame.shape == (64, 32, 3)
    assert frame[-4:, :4].mean() > 200 and frame[:4, :4].mean() < 150
    copy = clean_copy(path, tmp_path / "stored")
    assert (copy.info.width, copy.info.height, copy.info.rotation) == (32, 64, 90)
    scaled = next(iter_frames(copy.path, size=(16, 32))).image
    assert scaled.shape == (32, 16, 3) and scaled[-2:, :2].mean() > 200


def test_variable_frame_rate_keeps_timestamps(tmp_path: Path) -> None:
    times = [0.0, 0.1, 0.15, 0.5, 0.55, 1.0]
    path = write_clip(tmp_path / "vfr.mp4", _solid((64, 48), len(times)), times=times)
    got = [f.time_s for f in iter_frames(path)]
    assert got == pytest.approx(times, abs=1e-3)
    assert probe_video(path).frame_count == len(times)


def test_webm_is_stored_as_webm(tmp_path: Path) -> None:
    path = write_clip(tmp_path / "chrome.webm", _solid((64, 48), 8), codec="libvpx-vp9")
    copy = clean_copy(path, tmp_path / "stored.mp4")
    assert copy.path.suffix == ".webm" and copy.info.codec == "vp9"


def test_other_codecs_are_reencoded_to_h264(tmp_path: Path) -> None:
    path = write_clip(tmp_path / "old.mp4", _solid((64, 48), 8), codec="mpeg4")
    copy = clean_copy(path, tmp_path / "stored")
    assert not copy.remuxed and copy.info.codec == "h264" and copy.info.frame_count == 8


def test_reencoded_copies_are_at_most_transcode_side(tmp_path: Path) -> None:
    # A re-encode happens in the web request: a large clip is scaled down while decoding.
    path = write_clip(tmp_path / "big.mp4", _solid((2560, 1440), 3), codec="mpeg4")
    copy = clean_copy(path, tmp_path / "stored")
    assert (copy.info.width, copy.info.height) == (TRANSCODE_SIDE, 1080)


def test_poster_is_a_displayed_frame(dog_clip: Path) -> None:
    from io import BytesIO

    poster = Image.open(BytesIO(poster_jpeg(dog_clip, max_side=160)))
    assert poster.format == "JPEG" and poster.size == (160, 120)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d, clip: _write(d / "empty.mp4", b""), "empty"),
        (lambda d, clip: _write(d / "notes.mp4", b"just some text, not a video\n" * 40),
         "not a video"),
        (lambda d, clip: _png(d / "photo.mp4"), "still picture"),
        (lambda d, clip: write_clip(d / "one.mp4", _solid((64, 48), 1)), "still picture"),
        (lambda d, clip: write_clip(d / "tiny.mp4", _solid((16, 16), 5)), "too small"),
        (lambda d, clip: write_clip(d / "long.mp4", _solid((64, 48), 17), fps=1.0),
         "17 s long; the longest is 15 s"),
        (lambda d, clip: _write(d / "cut.mp4", _faststart(clip, d)[: 20_000]), "cut short"),
        (lambda d, clip: _write(d / "cut-end.mp4", clip.read_bytes()[: 20_000]),
         "not a video"),
        (lambda d, clip: sound_only(d / "song.m4a"), "only sound"),
    ],
    ids=["empty", "text", "png-renamed", "one-frame", "16x16", "too-long", "truncated",
         "truncated-no-index", "sound-only"],
)
def test_bad_inputs_are_refused_with_a_reason(make, message: str, dog_clip: Path,
                                              tmp_path: Path) -> None:  # fmt: skip
    path = make(tmp_path, dog_clip)
    with pytest.raises(VideoError, match=message):
        probe_video(path)
    with pytest.raises(VideoError, match=message):
        clean_copy(path, tmp_path / "stored")
    assert not list(tmp_path.glob("stored*"))


def test_over_4k_is_refused(tmp_path: Path) -> None:
    path = write_clip(tmp_path / "8k.mp4", _solid((3856, 64), 2))
    with pytest.raises(VideoError, match="too large"):
        probe_video(path)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _png(path: Path) -> Path:
    Image.new("RGB", (64, 48), (200, 30, 30)).save(path, format="PNG")
    return path


def _faststart(clip: Path, directory: Path) -> bytes:
    """The clip remuxed with its index first (as phones write it), so a cut keeps the index."""
    return clean_copy(clip, directory / "faststart").path.read_bytes()




def test_iphone_style_hevc_mov_is_stored_as_mp4_safari_plays(tmp_path: Path) -> None:
    # An iPhone's clip: HEVC in a QuickTime file, held upright (a display rotation).
    path = write_clip(tmp_path / "IMG_0001.MOV", _solid((64, 48), 6), codec="libx265",
                      rotation=270, container="mov")  # fmt: skip
    copy = clean_copy(path, tmp_path / "stored")
    assert copy.path.suffix == ".mp4" and copy.remuxed
    assert (copy.info.codec, copy.info.width, copy.info.height) == ("hevc", 48, 64)
    with av.open(str(copy.path)) as stored:
        assert stored.streams.video[0].codec_tag == "hvc1"
