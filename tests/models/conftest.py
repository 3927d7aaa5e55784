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
