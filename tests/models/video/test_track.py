"""The walk through a clip puts masks where the camera's motion puts the object: on processed
frames, on the carried frames between them, backwards and forwards from the chosen frame,
and nowhere once the object has left the picture."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest

from bench.clips import Motion, pan_clip
from models.errors import BadPromptError
from models.segment.mask import Mask
from models.video.io import Frame, probe_video
from models.video.track import (
    ObjectPrompt,
    TrackStep,
    carry,
    frame_times,
    plan_frames,
    track_clip,
    warp_to_box,
)
from tests.models.conftest import open_photo

FPS = 30.0


class TemplateTracker:
    """Stand-in mask decoder: finds the prompted object's pixels of the chosen frame again in
    each frame it is handed (normalised cross-correlation, ``cv2.matchTemplate``), so its
    masks follow whatever motion the frames it is given show. An object is absent when the
    best match scores under 0.8 (as it does once part of the object has left the frame)."""

    def __init__(self) -> None:
        self.templates: list[tuple[np.ndarray, np.ndarray]] = []
        self.seen: list[tuple[int, int]] = []

    def start(self, image: np.ndarray, prompts: Sequence[ObjectPrompt]) -> TrackStep:
        self.templates = []
        logits = []
        for prompt in prompts:
            assert prompt.mask is not None
            ys, xs = np.nonzero(prompt.mask)
            y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
            self.templates.append((image[y0:y1, x0:x1].copy(), prompt.mask[y0:y1, x0:x1]))
            logits.append(np.where(prompt.mask, 10.0, -10.0))
        self.seen.append(image.shape[:2])
        return TrackStep(np.array(logits, dtype=np.float32), np.ones(len(prompts), bool))

    def track(self, image: np.ndarray) -> TrackStep:
        self.seen.append(image.shape[:2])
        logits, present = [], []
        for template, mask in self.templates:
            scores = cv2.matchTemplate(image, template, cv2.TM_CCOEFF_NORMED)
            _, best, _, (x, y) = cv2.minMaxLoc(scores)
            out = np.full(image.shape[:2], -10.0, dtype=np.float32)
            out[y : y + mask.shape[0], x : x + mask.shape[1]][mask] = 10.0
            logits.append(out)
            present.append(best >= 0.8)
        return TrackStep(np.array(logits), np.array(present))


@pytest.fixture(scope="module")
def pan(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Motion]:
    """3 s at 30 fps, 320x240, the camera panning right across dog.jpg (the scene moves
    left by 3 frame pixels a frame)."""
    path = tmp_path_factory.mktemp("pan") / "pan.mp4"
    photo = open_photo("dog.jpg")
    scale = 320 / (photo.width / 3)
    motion = pan_clip(path, photo, size=(320, 240), seconds=3.0, fps=FPS,
                      velocity=(90.0 / scale, 0.0))  # fmt: skip
    return path, motion


def _expected(motion: Motion, photo_box: np.ndarray, t: float) -> np.ndarray:
    (x0, y0), (x1, y1) = motion.to_frame(photo_box.reshape(2, 2), t)
    return np.array([x0, y0, x1, y1])


@pytest.mark.parametrize("prompt_index", [0, 24])
def test_masks_follow_the_pan_on_processed_and_carried_frames(pan, prompt_index: int) -> None:
    path, motion = pan
    t_prompt = prompt_index / FPS
    frame_box = np.array([90.0, 80.0, 154.0, 144.0])  # a 64-px square, left of the middle
    ox, oy = motion.origin(t_prompt)
    photo_box = frame_box / motion.scale(t_prompt) + [ox, oy, ox, oy]
    emitted: list[tuple[Frame, dict[int, Mask | None]]] = []
    tracker = TemplateTracker()
    started: list[int] = []

    def find_prompts(image: np.ndarray) -> list[ObjectPrompt]:
        assert image.shape == (240, 320, 3)
        mask = np.zeros((240, 320), bool)
        x0, y0, x1, y1 = frame_box.astype(int)
        mask[y0:y1, x0:x1] = True
        return [ObjectPrompt(7, mask=mask)]

    progress: list[tuple[int, int]] = []
    stats = track_clip(
        path, tracker, prompt_index=prompt_index, find_prompts=find_prompts,
        result_size=(320, 240), track_side=240, fps=5.0,
        emit=lambda frame, masks: emitted.append((frame, masks)),
        on_start=lambda image, masks: started.append(masks[7].area),
        progress=lambda done, total: progress.append((done, total)),
    )  # fmt: skip
    plan = plan_frames(frame_times(path), prompt_index, 5.0)
    assert [f.index for f, _ in emitted] == list(range(90)) and stats.frames == 90
    assert stats.processed == len(plan) == progress[-1][0] == progress[-1][1]
    assert started == [64 * 64]
    assert set(tracker.seen) == {(180, 240)}  # the tracker saw small frames only
    checked = {"processed": 0, "carried": 0, "absent": 0}
    for frame, masks in emitted:
        want = _expected(motion, photo_box, frame.time_s)
        kind = "processed" if frame.index in plan else "carried"
        if want[0] >= 6:  # wholly in the picture, with a margin of two frames' motion
            mask = masks[7]
            assert mask is not None, f"frame {frame.index} lost the object"
            np.testing.assert_allclose(mask.box, want, atol=3.0,
                                       err_msg=f"{kind} frame {frame.index}")  # fmt: skip
            checked[kind] += 1
        elif want[2] <= 0:  # wholly gone
            assert masks[7] is None, f"frame {frame.index} draws an object that has left"
            checked["absent"] += 1
    assert checked["processed"] >= 4 and checked["carried"] >= 20 and checked["absent"] >= 10


def test_plan_processes_five_frames_a_second_by_timestamps() -> None:
    times = [i / 30 for i in range(60)]
    plan = plan_frames(times, 0, 5.0)
    assert plan == [0, 6, 12, 18, 24, 30, 36, 42, 48, 54, 59]
    assert plan_frames(times, 31, 5.0) == [0, 1, 7, 13, 19, 25, 31, 37, 43, 49, 55, 59]
    # A clip that slows to 10 fps half-way still gets a frame every 0.2 s.
    vfr = [i / 30 for i in range(30)] + [1 + i / 10 for i in range(10)]
    chosen = [vfr[i] for i in plan_frames(vfr, 0, 5.0)]
    assert np.allclose(np.diff(chosen[:-1]), 0.2, atol=0.02)
    with pytest.raises(ValueError):
        plan_frames(times, 60, 5.0)


def test_carried_mask_moves_and_scales_with_the_box() -> None:
    a = np.zeros((100, 200), bool)
    a[10:30, 20:60] = True
    b = np.zeros((100, 200), bool)
    b[50:90, 100:180] = True  # moved and twice as large
    mid = carry(Mask.from_array(a), Mask.from_array(b), 0.25)
    assert mid is not None and mid.box == (40.0, 20.0, 90.0, 45.0)
    assert carry(Mask.from_array(a), None, 0.4) == Mask.from_array(a)
    assert carry(Mask.from_array(a), None, 0.6) is None
    assert warp_to_box(Mask.from_array(a), (-500, 0, -400, 10)) is None


def test_a_frame_outside_the_clip_is_refused(pan) -> None:
    path, _ = pan
    with pytest.raises(BadPromptError, match="not in the clip"):
        track_clip(path, TemplateTracker(), prompt_index=90, find_prompts=lambda i: [],
                   result_size=(320, 240), track_side=240, fps=5.0,
                   emit=lambda f, m: None)  # fmt: skip
    assert probe_video(path).frame_count == 90
