"""Fixtures of the models tests: the real photos and one inference service shared by all."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
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
    from models.allocator import tune_allocator
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
