"""Reading clips with PyAV (FFmpeg's libraries, bundled in the ``av`` wheels): what a clip is
(:func:`probe_video`), the copy that is stored (:func:`clean_copy`), its poster frame
(:func:`poster_jpeg`) and its frames, one at a time (:func:`iter_frames`).

Files are opened by their content (a file object, so FFmpeg never sees a file name to guess
from), only in the containers phones record (MP4/MOV, WebM/Matroska). Frames come out as
displayed: the container's display matrix (a phone held upright records landscape pixels and
a rotation) is applied. Timestamps, not frame counts, give each frame's time, so
variable-frame-rate clips (phones slow their frame rate in dim light) keep their timing.
Importing this module is cheap; ``av`` is imported by the functions that use it.
"""

from __future__ import annotations

import io
import logging
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from models.video.errors import VideoError

if TYPE_CHECKING:
    import av.container

log = logging.getLogger(__name__)

#: Default longest clip, seconds (the app's ``MAX_VIDEO_S``).
MAX_VIDEO_S = 15.0
#: A clip may run this much past the limit: phones stop a few frames after the button.
DURATION_TOLERANCE_S = 0.25
#: Smallest short side and largest long side of a clip as displayed, pixels (4K UHD).
MIN_SIDE = 32
MAX_SIDE = 3840
#: FFmpeg's names of the containers phones and browsers record: MP4/MOV (iPhone, Android,
#: Safari's MediaRecorder) and Matroska/WebM (Chrome's and Firefox's MediaRecorder).
ACCEPTED_FORMATS = frozenset({"mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm"})
#: Video codecs that are copied as they are, and the container each is stored in; any other
#: codec is re-encoded to H.264 in MP4.
REMUX_CONTAINERS = {"h264": "mp4", "hevc": "mp4", "av1": "mp4", "vp8": "webm", "vp9": "webm"}
SUFFIXES = {"mp4": ".mp4", "webm": ".webm"}
POSTER_SIDE = 640  # long side of the library's poster frame, px
#: Long side of a re-encoded copy, px (a codec that cannot be copied: done in the web request).
TRANSCODE_SIDE = 1920
_NOT_A_VIDEO = "This file is not a video, or it is damaged."


@dataclass(frozen=True)
class VideoInfo:
    """What a clip is, as displayed.

    Attributes:
        width, height: frame size in pixels with the rotation applied (what a player shows).
        duration_s: seconds from the first frame's start to the last frame's end, from the
            packets' timestamps (also for files whose header states no duration, as Chrome's
            WebM recordings).
        fps: average frame rate, frames per second (``frame_count / duration_s``).
        frame_count: number of video frames (packets of the video stream).
        codec: FFmpeg's codec name ("h264", "hevc", "vp9", ...).
        rotation: counter-clockwise degrees (0, 90, 180, 270) the stored pixels are turned by
            to display them (the display matrix; an iPhone held upright records 270).
        container: FFmpeg's name of the container ("mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm").
    """

    width: int
    height: int
    duration_s: float
    fps: float
    frame_count: int
    codec: str
    rotation: int
    container: str


@dataclass(frozen=True)
class Frame:
    """One decoded frame.

    Attributes:
        index: 0-based position in the clip (decoding order of presentation).
        time_s: seconds from the clip's first frame (its timestamp).
        image: (H, W, 3) uint8 RGB, as displayed (rotation applied), at the size asked for.
    """

    index: int
    time_s: float
    image: np.ndarray


@contextmanager
def _open(path: Path) -> Iterator[av.container.InputContainer]:
    """The file opened by PyAV from its bytes (a file object: no file name to guess by).

    Raises:
        VideoError: empty, missing, or not a media file FFmpeg can read.
    """
    import av

    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise VideoError("The video file could not be read.") from exc
    if size == 0:
        raise VideoError("The file is empty.")
    with path.open("rb") as handle:
        try:
            container = av.open(handle, "r", metadata_errors="ignore")
        except (av.FFmpegError, UnicodeDecodeError, ValueError) as exc:
            raise VideoError(_NOT_A_VIDEO) from exc
        try:
            yield container
        finally:
            container.close()


def _video_stream(container: av.container.InputContainer) -> Any:
    """The container's first video stream, after checking it is a clip (not a picture).

    Raises:
        VideoError: a still-image format, an unsupported container, or no video stream.
    """
    name = container.format.name
    if name.endswith("_pipe") or name in {"image2", "gif", "apng", "webp"}:
        raise VideoError("This is a still picture, not a video. Upload it as a photo instead.")
    if name not in ACCEPTED_FORMATS:
        raise VideoError("This file is not a video this app can read (MP4, MOV or WebM).")
    if not container.streams.video:
        raise VideoError("This file has no pictures in it, only sound.")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    return stream


def _displayed(frame_width: int, frame_height: int, rotation: int) -> tuple[int, int]:
    """(width, height) as displayed: swapped for a quarter turn."""
    return (frame_height, frame_width) if rotation % 180 else (frame_width, frame_height)


def _rotation(frame: Any) -> int:
    """The frame's display rotation, counter-clockwise degrees rounded to 0/90/180/270."""
    try:
        degrees = float(frame.rotation)
    except (AttributeError, TypeError, ValueError):
        return 0
    return int(round(degrees / 90.0)) % 4 * 90


def _check_size(width: int, height: int, min_side: int, max_side: int) -> None:
    if min(width, height) < min_side:
        raise VideoError(
            f"The clip is too small ({width}x{height} pixels); it needs at least {min_side} "
            "pixels a side."
        )
    if max(width, height) > max_side:
        raise VideoError(
            f"The clip is too large ({width}x{height} pixels); the largest is 4K "
            f"({max_side} pixels on the long side)."
        )


def _check_duration(duration_s: float, max_duration_s: float) -> None:
    if duration_s > max_duration_s + DURATION_TOLERANCE_S:
        raise VideoError(
            f"The clip is {math.ceil(duration_s)} s long; the longest is "
            f"{max_duration_s:g} s."
        )


def _check_complete(packets: int, expected: int) -> None:
    """Raise VideoError when the header lists more frames (``expected``; 0: not stated) than
    the file holds packets: a file cut short (an upload that stopped part-way)."""
    if expected and packets < expected:
        raise VideoError(
            f"The clip is cut short (the file holds {packets} of its {expected} frames); "
            "please upload it again."
        )


def probe_video(
    path: Path,
    *,
    max_duration_s: float = MAX_VIDEO_S,
    min_side: int = MIN_SIDE,
    max_side: int = MAX_SIDE,
) -> VideoInfo:
    """Check that ``path`` holds a clip this app takes, and say what it is.

    Reads every packet of the video stream (no decoding: for a 15-s 4K clip, the file's
    bytes once) to count frames and find the duration from timestamps, and decodes the
    first two frames (the rotation, the size, and proof that the stream decodes).

    Args:
        path: the uploaded file (its name is never looked at).
        max_duration_s: longest clip, seconds (``DURATION_TOLERANCE_S`` more is let pass).
        min_side: smallest short side as displayed, pixels.
        max_side: largest long side as displayed, pixels.

    Returns:
        The clip's :class:`VideoInfo`.

    Raises:
        VideoError: empty file; not a media file; a still picture (an image format, or a
            video stream of one frame); no video stream; a stream that does not decode; a
            file cut short (fewer packets than its header lists, or a read error); longer
            than ``max_duration_s``; smaller than ``min_side`` or larger than ``max_side``.
    """
    import av

    with _open(path) as container:
        stream = _video_stream(container)
        if container.duration is not None:  # microseconds; refuse long clips before reading
            _check_duration(container.duration / 1_000_000, max_duration_s)
        time_base = stream.time_base
        first_pts: int | None = None
        end_pts: int | None = None
        packets = 0
        decoded: list[Any] = []
        try:
            for packet in container.demux(stream):
                if packet.size == 0 and packet.pts is None:
                    continue  # the demuxer's end-of-stream packet
                packets += 1
                if packet.pts is not None:
                    first_pts = packet.pts if first_pts is None else min(first_pts, packet.pts)
                    end = packet.pts + (packet.duration or 0)
                    end_pts = end if end_pts is None else max(end_pts, end)
                if len(decoded) < 2:
                    decoded.extend(stream.codec_context.decode(packet))
                    if decoded:
                        width, height = _displayed(
                            decoded[0].width, decoded[0].height, _rotation(decoded[0])
                        )
                        _check_size(width, height, min_side, max_side)
            if len(decoded) < 2:
                decoded.extend(stream.codec_context.decode(None))
        except av.FFmpegError as exc:
            _check_complete(packets, stream.frames)
            if decoded or packets > 1:
                raise VideoError("The clip is damaged; please upload it again.") from exc
            raise VideoError(_NOT_A_VIDEO) from exc
        _check_complete(packets, stream.frames)
        if packets < 2:
            raise VideoError(
                "This is a still picture, not a video. Upload it as a photo instead."
            )
        if not decoded:
            raise VideoError("The video in this file could not be decoded.")
        first = decoded[0]
        rotation = _rotation(first)
        width, height = _displayed(first.width, first.height, rotation)
        _check_size(width, height, min_side, max_side)
        if first_pts is not None and end_pts is not None and time_base is not None:
            duration_s = float((end_pts - first_pts) * time_base)
        else:
            duration_s = (container.duration or 0) / 1_000_000
        if duration_s <= 0:
            raise VideoError("This is a still picture, not a video. Upload it as a photo instead.")
        _check_duration(duration_s, max_duration_s)
        return VideoInfo(
            width=width,
            height=height,
            duration_s=round(duration_s, 4),
            fps=round(packets / duration_s, 3),
            frame_count=packets,
            codec=stream.codec_context.name,
            rotation=rotation,
            container=container.format.name,
        )


@dataclass(frozen=True)
class CleanVideo:
    """The stored copy made by :func:`clean_copy`.

    Attributes:
        path: the copy; its suffix fits its container (".mp4" or ".webm").
        info: the copy's :class:`VideoInfo` (probed anew from the copy).
        remuxed: True when the packets were copied as they were (no re-encoding).
    """

    path: Path
    info: VideoInfo
    remuxed: bool


def clean_copy(
    src: Path,
    dst: Path,
    *,
    max_duration_s: float = MAX_VIDEO_S,
    min_side: int = MIN_SIDE,
    max_side: int = MAX_SIDE,
) -> CleanVideo:
    """Write the copy of a clip that is stored: its video stream only.

    Audio, subtitles, data tracks (an iPhone's timed location and camera metadata) and all
    container and stream metadata (GPS position, device, creation time) are left out. H.264,
    HEVC and AV1 are copied packet for packet into MP4 (``+faststart``: the index first, so
    a player starts before the whole file arrives), VP8 and VP9 into WebM: a remux, which
    reads and writes the file's bytes once (~0.1 s for a 15-s phone clip). Any other codec
    is re-encoded to H.264 (libx264, CRF 20, preset ultrafast), at most ``TRANSCODE_SIDE``
    pixels on its long side, with the rotation applied. A remux keeps the
    display matrix (the rotation: it is not metadata about the person, and players apply it).

    Args:
        src: the uploaded file (checked as :func:`probe_video` does, with these limits).
        dst: where to write; its suffix is replaced by the container's (".mp4"/".webm").
            Written to a temporary name beside it first and renamed when complete.

    Returns:
        :class:`CleanVideo` (the path actually written, the copy's info, remuxed or not).

    Raises:
        VideoError: ``src`` is refused by :func:`probe_video`, or could not be copied.
        OSError: ``dst``'s directory cannot be written.
    """
    import av

    info = probe_video(src, max_duration_s=max_duration_s, min_side=min_side,
                       max_side=max_side)  # fmt: skip
    container_name = REMUX_CONTAINERS.get(info.codec)
    remux = container_name is not None
    container_name = container_name or "mp4"
    target = Path(dst).with_suffix(SUFFIXES[container_name])
    part = target.with_name(target.name + ".part")
    try:
        with _open(src) as source, av.open(
            str(part), "w", format=container_name,
            options={"movflags": "+faststart"} if container_name == "mp4" else {},
        ) as out:  # fmt: skip
            stream = _video_stream(source)
            if remux:
                _remux(source, stream, out)
            else:
                _transcode(source, stream, out, info.rotation)
            out.metadata.clear()
        copied = probe_video(part, max_duration_s=max_duration_s, min_side=min_side,
                             max_side=max_side)  # fmt: skip
        os.replace(part, target)
    except av.FFmpegError as exc:
        raise VideoError("The clip could not be copied; it may be damaged.") from exc
    finally:
        part.unlink(missing_ok=True)
    log.info("stored %s copy of a %s clip (%dx%d, %.2f s, %d frames)",
             "remuxed" if remux else "re-encoded", info.codec, copied.width, copied.height,
             copied.duration_s, copied.frame_count)  # fmt: skip
    return CleanVideo(path=target, info=copied, remuxed=remux)


def _remux(source: Any, stream: Any, out: Any) -> None:
    """Copy the video stream's packets into ``out`` with no metadata."""
    copy = out.add_stream_from_template(stream)
    copy.metadata.clear()
    if stream.codec_context.name == "hevc":
        copy.codec_tag = "hvc1"  # the tag Safari and QuickTime play HEVC in MP4 with
    for packet in source.demux(stream):
        if packet.dts is None:
            continue
        packet.stream = copy
        out.mux(packet)


def _transcode(source: Any, stream: Any, out: Any, rotation: int) -> None:
    """Re-encode the video stream to H.264 yuv420p in ``out``, rotation applied."""
    import av

    encoder = None
    first_pts = None
    for frame in source.decode(stream):
        # Scaled while decoding (swscale) to at most TRANSCODE_SIDE: the web request pays for
        # this, and a 4K re-encode of 15 s would outlast the request's timeout.
        width, height = fit_size(frame.width, frame.height, TRANSCODE_SIDE, even=True)
        image = frame.to_ndarray(format="rgb24", width=width, height=height)
        image = _upright(image, rotation)
        if encoder is None:
            encoder = out.add_stream("libx264", rate=stream.average_rate or 30)
            encoder.width, encoder.height = image.shape[1] // 2 * 2, image.shape[0] // 2 * 2
            encoder.pix_fmt = "yuv420p"
            encoder.time_base = stream.time_base
            encoder.options = {"crf": "20", "preset": "ultrafast"}
        out_frame = av.VideoFrame.from_ndarray(
            np.ascontiguousarray(image[: encoder.height, : encoder.width]), format="rgb24"
        )
        if frame.pts is not None:
            first_pts = frame.pts if first_pts is None else first_pts
            out_frame.pts = frame.pts - first_pts
            out_frame.time_base = stream.time_base
        for packet in encoder.encode(out_frame):
            out.mux(packet)
    if encoder is not None:
        for packet in encoder.encode(None):
            out.mux(packet)


def _upright(image: np.ndarray, rotation: int) -> np.ndarray:
    """``image`` (H, W, C) turned counter-clockwise by ``rotation`` degrees (a view)."""
    turns = (rotation // 90) % 4
    return np.rot90(image, k=turns) if turns else image


def fit_size(width: int, height: int, long_side: int | None, *, even: bool = False
             ) -> tuple[int, int]:
    """(width, height) scaled down (never up) so the long side is at most ``long_side``,
    keeping the aspect ratio; rounded down to even numbers when ``even`` (H.264 4:2:0 needs
    them). ``long_side`` None: the size itself (made even if asked)."""
    scale = 1.0 if long_side is None else min(1.0, long_side / max(width, height))
    w, h = max(1, round(width * scale)), max(1, round(height * scale))
    if even:
        w, h = max(2, w // 2 * 2), max(2, h // 2 * 2)
    return w, h


def iter_frames(path: Path, *, size: tuple[int, int] | None = None) -> Iterator[Frame]:
    """Decode a clip frame by frame (one frame held at a time), as displayed.

    Args:
        path: a clip :func:`probe_video` accepted.
        size: (width, height) of the frames handed out, as displayed (scaled by FFmpeg's
            swscale, area-averaging when shrinking); None: the clip's own size.

    Yields:
        :class:`Frame` objects in presentation order: ``index`` 0, 1, ...; ``time_s`` from the
        frame's timestamp minus the first frame's (frames without one get the previous
        time plus one average frame interval).

    Raises:
        VideoError: the file cannot be opened or decoding fails part-way ("damaged" with
            the frame number).
    """
    import av

    with _open(path) as container:
        stream = _video_stream(container)
        rate = float(stream.average_rate or 30)
        time_base = stream.time_base
        first_pts = None
        last_time = -1.0 / rate
        index = 0
        try:
            for frame in container.decode(stream):
                rotation = _rotation(frame)
                if size is not None:
                    w, h = size if rotation % 180 == 0 else (size[1], size[0])
                    if (frame.width, frame.height) != (w, h):
                        frame = frame.reformat(width=w, height=h, format="rgb24",
                                               interpolation="AREA")  # fmt: skip
                image = _upright(frame.to_ndarray(format="rgb24"), rotation)
                if frame.pts is not None and time_base is not None:
                    first_pts = frame.pts if first_pts is None else first_pts
                    time_s = float((frame.pts - first_pts) * time_base)
                else:
                    time_s = last_time + 1.0 / rate
                last_time = time_s
                yield Frame(index=index, time_s=time_s, image=np.ascontiguousarray(image))
                index += 1
        except av.FFmpegError as exc:
            raise VideoError(
                f"The clip could not be read past frame {index + 1}; it may be damaged."
            ) from exc


def poster_jpeg(path: Path, time_s: float = 0.0, max_side: int = POSTER_SIDE,
                quality: int = 85) -> bytes:
    """A frame of the clip as JPEG bytes (the library's poster): the first frame at or after
    ``time_s`` seconds (the last frame if the clip is shorter), as displayed, its long side
    at most ``max_side`` px.

    Raises:
        VideoError: the clip cannot be opened or has no frame to show.
    """
    chosen: Frame | None = None
    for frame in iter_frames(path):
        chosen = frame
        if frame.time_s >= time_s:
            break
    if chosen is None:
        raise VideoError("The video in this file could not be decoded.")
    picture = Image.fromarray(chosen.image)
    picture.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
