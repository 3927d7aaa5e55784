"""MobileSAM's mask decoder with its transformer in bfloat16 (autocast) keeps float32's masks
and scores on the same (full-size, random) weights: the parity rule for a faster runtime,
mask IoU >= 0.98."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.segment.segmenter import MobileSamSegmenter
from tests.models.conftest import open_photo


@pytest.fixture(scope="module")
def segmenter(mobile_sam_checkpoint):
    """vit_t at its released size (the test checkpoint is full-size, random weights)."""
    return MobileSamSegmenter.from_checkpoint(mobile_sam_checkpoint, precision="float32")


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def _both(segmenter, call):
    """``call()`` with the decoder in float32, then in bfloat16 (inference mode, as served)."""
    with torch.inference_mode():
        segmenter.decoder_autocast = None
        exact = call()
        segmenter.decoder_autocast = torch.bfloat16
        try:
            fast = call()
        finally:
            segmenter.decoder_autocast = None
    return exact, fast


def test_bfloat16_decoder_keeps_box_masks(segmenter):
    photo = open_photo("bears.jpg").convert("RGB")
    embedding = segmenter.embed(photo)
    rng = np.random.default_rng(0)
    corners = rng.uniform(0, 0.6, (12, 2)) * (photo.width, photo.height)
    sizes = rng.uniform(0.1, 0.4, (12, 2)) * (photo.width, photo.height)
    boxes = np.hstack([corners, corners + sizes]).astype(np.float32)
    (masks32, scores32), (masks16, scores16) = _both(
        segmenter, lambda: segmenter.segment_boxes(photo, boxes, embedding=embedding)
    )
    assert len(masks16) == len(masks32) == len(boxes)
    ious = [_iou(np.asarray(a), np.asarray(b)) for a, b in zip(masks32, masks16, strict=True)]
    assert min(ious) >= 0.98, ious
    assert np.abs(np.asarray(scores32) - np.asarray(scores16)).max() < 0.02


def test_bfloat16_decoder_keeps_point_logits(segmenter):
    photo = open_photo("dog.jpg").convert("RGB")
    embedding = segmenter.embed(photo)
    grid = torch.rand(32, 1, 2, generator=torch.Generator().manual_seed(0)) * 1000
    points = (grid, torch.ones((32, 1), dtype=torch.int))
    (logits32, iou32), (logits16, iou16) = _both(
        segmenter, lambda: segmenter._decode(embedding, points=points, multimask=True)
    )
    assert logits16.dtype == torch.float32 and iou16.dtype == torch.float32
    assert not torch.equal(logits32, logits16), "autocast was not applied"
    a, b = logits32 > 0, logits16 > 0
    ious = (a & b).flatten(2).sum(-1) / (a | b).flatten(2).sum(-1).clamp(min=1)
    assert float(ious.min()) >= 0.98
    assert float((iou32 - iou16).abs().max()) < 0.02


def test_channels_last_encoder_gives_the_standard_embedding(segmenter):
    """The image encoder runs in channels_last memory format (faster convolutions); its
    embedding equals the standard (NCHW) computation's up to float rounding."""
    import copy

    from PIL import Image

    from models.segment.segmenter import work_size

    photo = open_photo("car-and-bicycle.jpg").convert("RGB")
    embedding = segmenter.embed(photo)
    height, width = work_size((photo.height, photo.width))
    work = photo.resize((width, height), Image.Resampling.BILINEAR, reducing_gap=2.0)
    pixels = torch.from_numpy(np.asarray(work).copy()).permute(2, 0, 1)[None].float()
    standard = copy.deepcopy(segmenter.model.image_encoder).to(
        memory_format=torch.contiguous_format
    )
    with torch.inference_mode():
        expected = standard(segmenter.model.preprocess(pixels).contiguous())
    assert embedding.features.shape == expected.shape == (1, 256, 64, 64)
    assert embedding.features.is_contiguous()
    assert torch.allclose(embedding.features, expected, atol=1e-4)
