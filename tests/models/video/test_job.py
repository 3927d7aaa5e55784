"""A video job through the worker on the real SAM 2 video model (small, random weights): the
overlay video has the clip's frames and size, the JSON's masks decode, progress counts
processed frames, and every fault ends as a failed job with a reason."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from bench.clips import pan_clip
from models.segment.rle import rle_to_mask
from models.service import InferenceService
from models.video.sam2 import Sam2Tracker
from models.video.track import ObjectPrompt
from models.worker import JobRequest, process_one
from tests.models.conftest import open_photo


class VideoSource:
    """In-memory job source with the video hooks; keeps what the worker hands it."""

    def __init__(self, jobs: list[JobRequest], tmp_path: Path) -> None:
        self.jobs, self.tmp_path = list(jobs), tmp_path
        self.progress_calls: list[tuple[float, str]] = []
        self.frame_counts: list[tuple[int, int]] = []
        self.previews: list[bytes] = []
        self.completed: dict[str, tuple[object, Path, bytes, bytes]] = {}
        self.failed: dict[str, str] = {}

    def claim(self) -> JobRequest | None:
        return self.jobs.pop(0) if self.jobs else None

    def progress(self, job_id: str, fraction: float, stage: str) -> None:
        self.progress_calls.append((fraction, stage))

    def video_preview(self, job_id: str, png: bytes) -> None:
        self.previews.append(png)

    def video_frames(self, job_id: str, done: int, total: int) -> None:
        self.frame_counts.append((done, total))

    def complete_video(self, job_id, result, overlay: Path, data: bytes, poster: bytes) -> None:
        kept = self.tmp_path / f"{job_id}.mp4"
        kept.write_bytes(overlay.read_bytes())  # the worker deletes its temporary file
        self.completed[job_id] = (result, kept, data, poster)

    def complete(self, *args) -> None:
        raise AssertionError("a video job completes with complete_video")

    def fail(self, job_id: str, reason: str) -> None:
        self.failed[job_id] = reason


@pytest.fixture(scope="module")
def video_service(video_service_config, service) -> InferenceService:
    """The shared random-weight service with the small SAM 2 video model (256 px)."""
    svc = InferenceService(video_service_config)
    svc.segmenter, svc.detector, svc.weights = service.segmenter, service.detector, dict(
        service.weights)  # fmt: skip
    return svc


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1.5 s at 24 fps, 198x150, a pan and a slight tilt across bears.jpg."""
    path = tmp_path_factory.mktemp("clip") / "bears.mp4"
    pan_clip(path, open_photo("bears.jpg"), size=(198, 150), seconds=1.5, fps=24.0,
             velocity=(40.0, 10.0))  # fmt: skip
    return path


def _video_job(path: Path, mode: str, params: dict, phrases=None, job_id="v1") -> JobRequest:
    return JobRequest(job_id=job_id, image=None, mode=mode, phrases=phrases, key=job_id,
                      kind="video", params=params, video_path=path)  # fmt: skip


def _frames(path: Path) -> tuple[int, tuple[int, int], str]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        return len(frames), (frames[0].width, frames[0].height), frames[0].format.name


@pytest.mark.parametrize("mode", ["point", "everything"])
def test_video_job_end_to_end(mode: str, video_service, clip: Path, tmp_path: Path) -> None:
    params = {"frame": 6, "points": [[6, 60, 70], [6, 150, 40]]} if mode == "point" else {
        "frame": 6}  # fmt: skip
    source = VideoSource([_video_job(clip, mode, params)], tmp_path)
    assert process_one(source, video_service)
    assert not source.failed, source.failed
    result, overlay, data, poster = source.completed["v1"]
    count, size, pixel_format = _frames(overlay)
    assert (count, size, pixel_format) == (36, (198, 150), "yuv420p")
    document = json.loads(data)
    assert document["video"]["frame_count"] == 36 and len(document["frames"]) == 36
    assert [f["frame_index"] for f in document["frames"]] == list(range(36))
    assert document["weights"]["sam2_video"] == "unverified"
    ids = [o["object_id"] for o in document["objects"]]
    assert 1 <= len(ids) <= 8 and (mode != "point" or len(ids) == 2)
    for frame in document["frames"]:
        assert sorted(o["object_id"] for o in frame["objects"]) == sorted(ids)
        for entry in frame["objects"]:
            if entry.get("absent"):
                assert "mask" not in entry
                continue
            mask = rle_to_mask(entry["mask"])
            assert mask.shape == (150, 198) and mask.sum() == entry["area"] > 0
            ys, xs = np.nonzero(mask)
            assert entry["box"] == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
    stages = [s for _, s in source.progress_calls if s.startswith("Tracking")]
    # Frames 6, 11, 16, 21, 26, 31 (every 0.2 s from the chosen frame 6), 1 (back from it),
    # and the clip's ends 0 and 35.
    assert stages[-1] == "Tracking: frame 9 of 9"
    assert source.frame_counts[-1] == (9, 9)
    assert [done for done, _ in source.frame_counts] == sorted(done for done, _ in
                                                               source.frame_counts)
    fractions = [f for f, _ in source.progress_calls]
    assert fractions == sorted(fractions) and fractions[-1] < 1.0
    assert source.previews and source.previews[-1][:8] == b"\x89PNG\r\n\x1a\n"
    assert poster[:2] == b"\xff\xd8"


@pytest.mark.parametrize(
    ("mode", "params", "phrases", "reason"),
    [
        ("point", {"frame": 0}, None, "Tap the objects"),
        ("point", {"points": [[0, 500, 10]]}, None, "outside the video"),
        ("point", {"points": [[0, 10, 10], [3, 20, 20]]}, None, "same frame"),
        ("point", {"frame": 99, "points": [[10, 10]]}, None, "not in the clip"),
        ("grounded", {}, None, "what to look for"),
    ],
)
def test_bad_prompts_fail_the_job_with_a_reason(mode, params, phrases, reason, video_service,
                                                clip: Path, tmp_path: Path) -> None:  # fmt: skip
    source = VideoSource([_video_job(clip, mode, params, phrases)], tmp_path)
    assert process_one(source, video_service)
    assert reason in source.failed["v1"] and not source.completed


def test_a_damaged_clip_fails_the_job(video_service, clip: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(clip.read_bytes()[:3000])
    source = VideoSource([_video_job(broken, "point", {"points": [[5, 5]]})], tmp_path)
    assert process_one(source, video_service)
    assert "damaged" in source.failed["v1"] or "not a video" in source.failed["v1"]


def test_tracker_memory_stays_bounded(video_service) -> None:
    tracker = Sam2Tracker(video_service.video_model())
    frame = np.random.default_rng(0).integers(0, 255, (90, 160, 3), dtype=np.uint8)
    step = tracker.start(frame, [ObjectPrompt(1, point=(40.0, 30.0)),
                                 ObjectPrompt(2, box=(80.0, 10.0, 150.0, 80.0))])  # fmt: skip
    assert step.logits.shape == (2, 64, 64) and step.present.shape == (2,)
    for _ in range(40):
        step = tracker.track(frame)
    session = tracker.session
    assert len(session.processed_frames) == 1
    window = tracker._window
    for outputs in session.output_dict_per_obj.values():
        assert len(outputs["non_cond_frame_outputs"]) <= window + 1
        assert len(outputs["cond_frame_outputs"]) == 1  # the prompted frame, always read
        assert all("high_res_masks" not in o for o in outputs["non_cond_frame_outputs"].values())


def test_everything_follows_the_largest_named_objects_at_most_eight() -> None:
    from models.result import ObjectResult
    from models.video.job import pick_objects

    def obj(label: str, area: int, named: bool) -> ObjectResult:
        mask = np.zeros((10, 200), bool)
        mask.flat[:area] = True
        return ObjectResult(label, 0.5, (0, 0, 1, 1), mask, area, (0, 0, 0), named=named)

    found = [obj("something?", 1000, False)] + [obj(f"toy{i}", 10 + i, True) for i in range(10)]
    picked = pick_objects(found, "everything")
    assert [o.label for o in picked] == [f"toy{i}" for i in range(9, 1, -1)]
    unnamed = pick_objects([obj("something?", a, False) for a in (5, 50, 20)], "everything")
    assert [o.area for o in unnamed] == [50, 20, 5]


def test_overlay_is_a_phone_playable_mp4(tmp_path: Path) -> None:
    from models.video.output import OverlayWriter

    path = tmp_path / "overlay.mp4"
    with OverlayWriter(path, (64, 48), 30.0) as writer:
        for i in range(12):
            writer.write(np.full((48, 64, 3), i * 20, np.uint8), i / 30)
    data = path.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # index first: plays while loading
    with av.open(str(path)) as container:
        assert [s.type for s in container.streams] == ["video"]
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.codec_context.profile == "High"
        assert stream.format.name == "yuv420p" and stream.frames == 12
    with pytest.raises(ValueError, match="even"):
        OverlayWriter(tmp_path / "odd.mp4", (63, 48), 30.0)


def test_a_drawing_fault_fails_the_job_and_leaves_no_file(
    video_service, clip: Path, tmp_path: Path, monkeypatch
) -> None:
    import models.video.job as video_job

    def broken(*args, **kwargs):
        raise RuntimeError("no ink")

    monkeypatch.setattr(video_job, "draw_frame", broken)
    made: list[Path] = []
    real_scratch_dir = video_job.scratch_dir
    monkeypatch.setattr(video_job, "scratch_dir",
                        lambda kind: made.append(real_scratch_dir(kind)) or made[-1])
    source = VideoSource([_video_job(clip, "point", {"points": [[0, 60, 70]]})], tmp_path)
    assert process_one(source, video_service)
    assert source.failed["v1"] == (
        "Internal error while tracking the video: RuntimeError: no ink")
    assert not source.completed and made and not made[0].exists()
