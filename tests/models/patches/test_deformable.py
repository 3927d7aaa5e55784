"""The gathered multi-scale deformable attention matches transformers' own."""

from __future__ import annotations

import pytest
import torch

from models.patches import deformable
from models.patches.forwards import original_forward
from tests.models.conftest import assert_same_boxes_as_transformers

SHAPES = [(16, 24), (8, 12), (4, 6), (2, 3)]  # 4 levels, as Grounding DINO's, smaller


def attention_inputs(batch: int = 1, queries: int | None = None, spread: float = 0.0):
    """Inputs shaped like Grounding DINO's encoder at a small size: 4 levels, 8 heads x 32;
    sampling locations in [-spread, 1 + spread] (outside 0-1 they sample zero padding)."""
    generator = torch.Generator().manual_seed(0)
    tokens = sum(h * w for h, w in SHAPES)
    queries = queries or tokens
    value = torch.randn(batch, tokens, 8, 32, generator=generator)
    locations = torch.rand(batch, queries, 8, 4, 4, 2, generator=generator)
    locations = locations * (1 + 2 * spread) - spread
    weights = torch.rand(batch, queries, 8, 4, 4, generator=generator).softmax(-1)
    spatial = torch.tensor(SHAPES)
    start = torch.cat([spatial.new_zeros(1), (spatial[:, 0] * spatial[:, 1]).cumsum(0)[:-1]])
    return value, (spatial, SHAPES, start, locations, weights, 64)


def attention_module():
    from transformers.models.grounding_dino.modeling_grounding_dino import (
        MultiScaleDeformableAttention,
    )

    return MultiScaleDeformableAttention()


@pytest.mark.parametrize(
    ("batch", "queries", "spread"),
    [(1, None, 0.0), (1, 30, 0.3), (2, 50, 0.1)],  # encoder-like; decoder-like, off the maps
)
def test_gathered_forward_matches_transformers(batch, queries, spread):
    module = attention_module()
    value, args = attention_inputs(batch, queries, spread)
    with torch.inference_mode():
        expected = original_forward(module)(value, *args)
        assert deformable.install(torch.nn.Sequential(module)) == 1
        got = module(value, *args)
    assert got.dtype == expected.dtype == torch.float32
    assert got.shape == expected.shape == (batch, args[3].shape[1], 256)
    assert expected.abs().max() > 0.5  # the comparison is not between zeros
    torch.testing.assert_close(got, expected, rtol=0, atol=2e-5)


def test_points_off_every_map_sample_zeros():
    module = attention_module()
    value, (spatial, shapes, start, locations, weights, step) = attention_inputs(queries=4)
    locations = torch.full_like(locations, 1.5)  # a whole pixel and more beyond every edge
    with torch.inference_mode():
        got = deformable.gathered_forward(module, value, spatial, shapes, start, locations,
                                          weights, step)  # fmt: skip
    assert torch.equal(got, torch.zeros_like(got))


def test_gathered_forward_under_bfloat16_autocast_matches_transformers():
    module = attention_module()
    value, args = attention_inputs(queries=60, spread=0.1)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        source = value.bfloat16()
        half_args = (*args[:3], args[3].bfloat16(), args[4].bfloat16(), args[5])
        expected = original_forward(module)(source, *half_args)
        got = deformable.gathered_forward(module, source, *half_args)
    assert got.dtype == expected.dtype == torch.float32
    # Inputs rounded alike (bfloat16 locations: 2 * loc - 1 in bfloat16, as the original).
    torch.testing.assert_close(got, expected, rtol=0, atol=2e-5)


def test_install_reaches_every_attention_module_of_grounding_dino(grounding_dino_dir):
    from transformers import GroundingDinoForObjectDetection

    model = GroundingDinoForObjectDetection.from_pretrained(
        str(grounding_dino_dir), local_files_only=True
    )
    layers = model.config.encoder_layers + model.config.decoder_layers
    assert deformable.install(model) == layers


def test_grounding_dino_gives_the_same_boxes_with_the_gather(grounding_dino_dir):
    """A whole model's float32 pass: transformers' sampling and ours give the same boxes and
    scores (both detectors load the same small random-weight checkpoint)."""
    from models.detect.detector import GroundingDinoDetector

    ours = GroundingDinoDetector.from_pretrained(grounding_dino_dir, precision="float32")
    theirs = GroundingDinoDetector.from_pretrained(grounding_dino_dir, precision="float32")
    assert_same_boxes_as_transformers(ours, theirs, "MultiScaleDeformableAttention")


def test_omdet_turbo_gives_the_same_boxes_with_the_gather(omdet_turbo_dir):
    """OmDet-Turbo's decoder samples with the same module: a float32 pass on a real photo
    gives the same boxes and scores with transformers' sampling and with ours."""
    from models.detect.omdet import OmDetTurboDetector
    from tests.models.conftest import open_photo

    ours = OmDetTurboDetector.from_pretrained(omdet_turbo_dir, precision="float32")
    theirs = OmDetTurboDetector.from_pretrained(omdet_turbo_dir, precision="float32")
    for module in theirs.model.modules():
        if type(module).__name__ == "MultiScaleDeformableAttention":
            module.forward = original_forward(module)
    photo = open_photo("dog.jpg").convert("RGB")
    features = ours._features(photo, None)
    boxes, scores = ours._decode(features, ["cat", "ball"])
    ref_boxes, ref_scores = theirs._decode(features, ["cat", "ball"])
    torch.testing.assert_close(boxes, ref_boxes, rtol=0, atol=1e-4)
    torch.testing.assert_close(scores, ref_scores, rtol=0, atol=1e-4)
