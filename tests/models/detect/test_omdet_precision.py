"""OmDet-Turbo in bfloat16 keeps float32's boxes, checked at the released size: bfloat16
error grows with depth and width, so the small test model would not show it."""

from __future__ import annotations

import pytest
import torch

from models.detect.omdet import OmDetTurboDetector
from tests.models.conftest import assert_bfloat16_boxes_match, open_photo


@pytest.fixture(scope="module")
def full_size_detector(omdet_turbo_dir):
    """OmDet-Turbo tiny's architecture (timm Swin-T at 640, CLIP B/16 text tower, 900 queries)
    with random weights (seed 0), the test tokenizer, the released processor's settings and
    the loader's patches, in float32 weights (autocast switched per run)."""
    from transformers import AutoProcessor, OmDetTurboConfig, OmDetTurboForObjectDetection

    from bench.detector_models import omdet_turbo_processor
    from models.patches import apply_to_omdet_turbo

    config = OmDetTurboConfig()
    torch.manual_seed(0)
    model = OmDetTurboForObjectDetection(config)
    apply_to_omdet_turbo(model)
    tokenizer = AutoProcessor.from_pretrained(str(omdet_turbo_dir)).tokenizer
    return OmDetTurboDetector(model, omdet_turbo_processor(config, tokenizer),
                              precision="float32")  # fmt: skip


def run(detector, photo, words, dtype):
    """Features and one decoder pass in ``dtype`` (None: float32), text caches cleared."""
    for cache in (detector.model.language_cache_class, detector.model.language_cache_prompt):
        cache.cache.clear()
        cache.current_load = 0
    detector.autocast_dtype = dtype
    try:
        return detector._decode(detector._features(photo, None), words)
    finally:
        detector.autocast_dtype = None


def test_bfloat16_keeps_the_float32_boxes(full_size_detector):
    """The parity rule for a faster runtime: box IoU >= 0.95 with the float32 reference on the
    same weights, for >= 95% of the 900 queries' boxes, each matched to the closest box of
    the bfloat16 run (random weights' encoder scores are close, so a query may be selected in
    another order). Without the float32 anchors (``models.patches.anchors``) 48% matched."""
    photo = open_photo("dog.jpg").convert("RGB")
    words = ["dog", "ball", "grass"]
    boxes32, scores32 = run(full_size_detector, photo, words, None)
    boxes16, scores16 = run(full_size_detector, photo, words, torch.bfloat16)
    assert_bfloat16_boxes_match(boxes32, scores32, boxes16, scores16)
