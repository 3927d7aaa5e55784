"""Chunked multi-scale deformable attention gives bit-identical outputs to transformers'."""

from __future__ import annotations

import pytest
import torch

from models import deformable


@pytest.fixture
def attention_inputs():
    """Inputs shaped like Grounding DINO's encoder at a small size: 4 levels, 8 heads x 32."""
    generator = torch.Generator().manual_seed(0)
    shapes = [(16, 24), (8, 12), (4, 6), (2, 3)]
    tokens = sum(h * w for h, w in shapes)
    value = torch.randn(1, tokens, 8, 32, generator=generator)
    locations = torch.rand(1, tokens, 8, 4, 4, 2, generator=generator)
    weights = torch.rand(1, tokens, 8, 4, 4, generator=generator).softmax(-1)
    spatial = torch.tensor(shapes)
    start = torch.cat([spatial.new_zeros(1), (spatial[:, 0] * spatial[:, 1]).cumsum(0)[:-1]])
    return value, spatial, shapes, start, locations, weights


@pytest.mark.parametrize("autocast", [False, True])
def test_chunked_forward_is_bit_identical(attention_inputs, monkeypatch, autocast):
    from transformers.models.grounding_dino.modeling_grounding_dino import (
        MultiScaleDeformableAttention,
    )

    module = MultiScaleDeformableAttention()
    monkeypatch.setattr(deformable, "QUERY_CHUNK", 100)  # 510 queries: 6 chunks, the last partial
    value, spatial, shapes, start, locations, weights = attention_inputs
    args = (spatial, shapes, start, locations, weights, 64)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        source = value.bfloat16() if autocast else value
        expected = deformable.original_forward(module)(source, *args)
        assert deformable.install(torch.nn.Sequential(module)) == 1
        got = module(source, *args)
    assert got.dtype == expected.dtype and got.shape == expected.shape == (1, 510, 256)
    assert torch.equal(got, expected)


def test_install_reaches_every_attention_module_of_grounding_dino(grounding_dino_dir):
    from transformers import GroundingDinoForObjectDetection

    model = GroundingDinoForObjectDetection.from_pretrained(
        str(grounding_dino_dir), local_files_only=True
    )
    layers = model.config.encoder_layers + model.config.decoder_layers
    assert deformable.install(model) == layers
