"""Fixtures of the models tests: the real photos and one inference service shared by all."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from PIL import Image

from models.config import ServiceConfig

PHOTOS = Path(__file__).resolve().parents[3] / "shared" / "photos"
PHOTO_NAMES = ("dog.jpg", "bears.jpg", "car-and-bicycle.jpg", "letters.jpg")


def open_photo(name: str) -> Image.Image:
    """One of the real photos in /work/shared/photos, decoded (skips if absent)."""
    path = PHOTOS / name
    if not path.is_file():
        pytest.skip(f"photo {path} not available")
    image = Image.open(path)
    image.load()
    return image


@pytest.fixture(scope="session")
def service(service_config: ServiceConfig):
    """One loaded InferenceService on the random-weight checkpoints.

    Random weights predict mask IoUs of ~0.1, so everything mode's quality filters would
    drop every mask; the filters are switched off and the grid made small (4x4) so the tests
    see masks and stay fast. The pipeline code is the production one.
    """
    from models.runtime.allocator import tune_allocator
    from models.service import InferenceService

    tune_allocator()  # as the worker does: several times fewer page faults in PyTorch
    svc = InferenceService(service_config)
    svc.load()
    assert svc.segmenter is not None
    svc.segmenter.everything_settings = replace(
        svc.segmenter.everything_settings,
        points_per_side=4,
        pred_iou_thresh=0.0,
        stability_score_thresh=0.0,
    )
    return svc


def assert_same_boxes_as_transformers(ours, theirs, class_name: str) -> None:
    """Put transformers' own ``forward`` back on ``theirs``' modules of class ``class_name``
    and check that both detectors (float32, the same checkpoint) give the same boxes and
    scores for a real photo."""
    from models.patches.forwards import original_forward

    for module in theirs.model.modules():
        if type(module).__name__ == class_name:
            module.forward = original_forward(module)
    pixels = ours._pixels(open_photo("dog.jpg"))
    boxes, scores = ours._run(pixels, ["cat", "ball"], None)
    ref_boxes, ref_scores = theirs._run(pixels, ["cat", "ball"], None)
    torch.testing.assert_close(boxes, ref_boxes, rtol=0, atol=1e-4)
    torch.testing.assert_close(scores, ref_scores, rtol=0, atol=1e-4)


class Counter:
    """Forward hook that counts the runs of a module."""

    def __init__(self, module) -> None:
        self.runs = 0
        self.handle = module.register_forward_hook(self)

    def __call__(self, *args) -> None:
        self.runs += 1

    def remove(self) -> None:
        self.handle.remove()


def assert_bfloat16_boxes_match(boxes32, scores32, boxes16, scores16) -> None:
    """A detector's bfloat16 run against its float32 run on the same weights and input
    (boxes (Q, 4) cxcywh, scores (Q, N)): both float32 outputs, not equal (autocast applied),
    >= 95% of the float32 boxes with a bfloat16 box of IoU >= 0.95 (matched to the closest:
    random weights' query order may differ), and those matched boxes' scores within 0.01 at
    the median."""
    from torchvision.ops import box_convert, box_iou

    assert boxes16.dtype == torch.float32 and scores16.dtype == torch.float32
    assert not torch.equal(boxes32, boxes16), "autocast was not applied"
    iou = box_iou(box_convert(boxes32, "cxcywh", "xyxy"), box_convert(boxes16, "cxcywh", "xyxy"))
    best, match = iou.max(dim=1)
    assert float((best >= 0.95).float().mean()) >= 0.95, f"median IoU {float(best.median())}"
    close = best >= 0.95
    difference = (scores32[close] - scores16[match[close]]).abs()
    assert float(difference.median()) < 0.01  # the matched boxes' scores agree too
