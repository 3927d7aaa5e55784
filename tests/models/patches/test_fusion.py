"""The folded fusion attention (models/patches/fusion.py) matches transformers' own."""

from __future__ import annotations

import logging

import pytest
import torch

from models.patches import fusion
from models.patches.forwards import original_forward
from tests.models.conftest import assert_same_boxes_as_transformers

TOKENS = 300  # image tokens (8,160 in the real model; the algebra does not depend on it)


def attention_module(sharpness: float = 4.0):
    """A ``GroundingDinoBiMultiHeadAttention`` with 4 heads of 16 channels over 64-wide
    features, its query and key weights scaled up so the softmaxes are far from uniform."""
    from transformers import GroundingDinoConfig
    from transformers.models.grounding_dino.modeling_grounding_dino import (
        GroundingDinoBiMultiHeadAttention,
    )

    torch.manual_seed(0)
    config = GroundingDinoConfig(d_model=64, encoder_ffn_dim=128, encoder_attention_heads=8)
    module = GroundingDinoBiMultiHeadAttention(config).eval()
    assert (module.num_heads, module.head_dim) == (4, 16)
    with torch.no_grad():
        module.vision_proj.weight.mul_(sharpness)
        module.text_proj.weight.mul_(sharpness)
    return module


def attention_inputs(batch: int, words: int, masks: str):
    """Layer-normed random features and masks: "none" (None), "clear" (all False, as the
    model passes them for one unpadded image and caption) or "padding" (True at the end,
    different per batch element)."""
    generator = torch.Generator().manual_seed(1)
    vision = torch.randn(batch, TOKENS, 64, generator=generator)
    text = torch.randn(batch, words, 64, generator=generator)
    vision, text = (torch.nn.functional.layer_norm(x, (64,)) for x in (vision, text))
    if masks == "none":
        return vision, text, None, None
    vision_mask = torch.zeros(batch, TOKENS, dtype=torch.bool)
    text_mask = torch.zeros(batch, words, dtype=torch.bool)
    if masks == "padding":
        for b in range(batch):
            vision_mask[b, TOKENS - 40 * (b + 1) :] = True
            text_mask[b, words - 2 * (b + 1) :] = True
    return vision, text, vision_mask, text_mask


def both(module, inputs, autocast: bool = False):
    """(transformers' result, ours) for the same inputs."""
    with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=autocast):
        expected = original_forward(module)(*inputs)
        got = fusion.fused_forward(module, *inputs)
    return expected, got


def flat(result):
    """(vision output, vision weights, text output, text weights)."""
    (vision_output, vision_weights), (text_output, text_weights) = result
    return vision_output, vision_weights, text_output, text_weights


@pytest.mark.parametrize("masks", ["none", "clear", "padding"])
@pytest.mark.parametrize("words", [256, 7])
@pytest.mark.parametrize("batch", [1, 2])
def test_fused_forward_matches_transformers_in_float32(batch, words, masks):
    module = attention_module()
    inputs = attention_inputs(batch, words, masks)
    expected, got = both(module, inputs)
    heads = module.num_heads
    shapes = [(batch, TOKENS, 64), (batch * heads, TOKENS, words), (batch, words, 64),
              (batch * heads, words, TOKENS)]  # fmt: skip
    for want, have, shape in zip(flat(expected), flat(got), shapes, strict=True):
        assert have.shape == want.shape == shape
        assert have.dtype == want.dtype == torch.float32
        torch.testing.assert_close(have, want, rtol=0, atol=1e-5)
    vision_weights, text_weights = flat(got)[1], flat(got)[3]
    # The comparison is not between near-uniform weights.
    assert vision_weights.amax() > 0.5
    assert text_weights.amax() > 0.1
    if masks == "padding":  # padding gets no attention
        _, _, vision_mask, text_mask = inputs
        text_pad = text_mask.repeat_interleave(heads, 0)[:, None, :].expand_as(vision_weights)
        vision_pad = vision_mask.repeat_interleave(heads, 0)[:, None, :].expand_as(text_weights)
        assert torch.all(vision_weights[text_pad] == 0)
        assert torch.all(text_weights[vision_pad] == 0)


@pytest.mark.parametrize(("words", "masks"), [(256, "clear"), (7, "padding")])
def test_under_bfloat16_autocast_as_close_to_float32_as_transformers(words, masks):
    """As the detector runs it: Linear weights stored in bfloat16, float32 inputs. Ours may
    round at other points than the original; its deviation from the float32 result (same
    rounded weights) must not be notably larger: measured on the full-size model's
    activations, RMS 0-40% smaller and maximum at most 12% above the original's."""
    module = attention_module()
    with torch.no_grad():
        for linear in module.modules():
            if isinstance(linear, torch.nn.Linear):
                linear.weight.data = linear.weight.data.bfloat16().float()
                linear.bias.data = linear.bias.data.bfloat16().float()
    inputs = attention_inputs(1, words, masks)
    reference, _ = both(module, inputs)
    with torch.no_grad():
        for linear in module.modules():
            if isinstance(linear, torch.nn.Linear):
                linear.weight.data = linear.weight.data.bfloat16()
                linear.bias.data = linear.bias.data.bfloat16()
    theirs, ours = both(module, inputs, autocast=True)
    for exact, want, have in zip(flat(reference), flat(theirs), flat(ours), strict=True):
        assert have.dtype == want.dtype == torch.bfloat16
        assert have.shape == want.shape
        their_error = (want.float() - exact).abs()
        our_error = (have.float() - exact).abs()
        assert our_error.max() <= 1.25 * their_error.max()
        assert our_error.square().mean().sqrt() <= 1.1 * their_error.square().mean().sqrt()


def test_logits_beyond_the_clamp_run_transformers():
    """Logits spanning more than the original's +-50,000 clamp: the original's arithmetic
    (image tokens far below the global maximum get uniform weights), not a softmax's."""
    module = attention_module()
    vision, text, vision_mask, text_mask = attention_inputs(1, 7, "clear")
    vision[:, 0] *= 1e6  # one token's logits dwarf every other's
    expected, got = both(module, (vision, text, vision_mask, text_mask))
    assert torch.allclose(expected[0][1][:, 1:], torch.tensor(1 / 7))  # the clamp did act
    for want, have in zip(flat(expected), flat(got), strict=True):
        torch.testing.assert_close(have, want, rtol=0, atol=0)


def test_training_with_dropout_runs_transformers():
    module = attention_module().train()
    module.dropout = 0.5
    inputs = attention_inputs(1, 7, "none")
    torch.manual_seed(2)
    expected = original_forward(module)(*inputs)
    torch.manual_seed(2)
    got = fusion.fused_forward(module, *inputs)
    for want, have in zip(flat(expected), flat(got), strict=True):
        torch.testing.assert_close(have, want, rtol=0, atol=0)


def test_features_of_other_shapes_are_refused():
    module = attention_module()
    vision, text, _, _ = attention_inputs(2, 7, "none")
    with pytest.raises(ValueError, match="features"):
        fusion.fused_forward(module, vision, text[:1])
    with pytest.raises(ValueError, match="features"):
        fusion.fused_forward(module, vision, text[..., :32])


def test_install_reaches_every_fusion_attention_of_grounding_dino(grounding_dino_dir):
    from transformers import GroundingDinoForObjectDetection

    model = GroundingDinoForObjectDetection.from_pretrained(
        str(grounding_dino_dir), local_files_only=True
    )
    assert fusion.install(model) == model.config.encoder_layers
    for layer in model.model.encoder.layers:
        assert layer.fusion_layer.attn.forward.__func__ is fusion.fused_forward


def test_install_keeps_a_forward_of_another_signature(caplog):
    class GroundingDinoBiMultiHeadAttention(torch.nn.Module):
        def forward(self, vision_features, text_features, attention_mask=None):
            return vision_features

    model = torch.nn.Sequential(GroundingDinoBiMultiHeadAttention())
    with caplog.at_level(logging.WARNING, logger="models.patches.forwards"):
        assert fusion.install(model) == 0
    assert "keeping transformers' own" in caplog.text
    assert "forward" not in vars(model[0])


def test_grounding_dino_gives_the_same_boxes_with_the_fusion(grounding_dino_dir):
    """A whole model's float32 pass: transformers' fusion attention and ours give the same
    boxes and scores (both detectors load the same small random-weight checkpoint). The
    fusion layers' layer scale, initialised to 1e-4, is set to 1 in both so that the
    attention's outputs weigh in the result."""
    from models.detect.detector import GroundingDinoDetector

    ours = GroundingDinoDetector.from_pretrained(grounding_dino_dir, precision="float32")
    theirs = GroundingDinoDetector.from_pretrained(grounding_dino_dir, precision="float32")
    for detector in (ours, theirs):
        for layer in detector.model.model.encoder.layers:
            with torch.no_grad():
                layer.fusion_layer.vision_param.fill_(1.0)
                layer.fusion_layer.text_param.fill_(1.0)
    assert fusion.install(ours.model) == 1
    assert_same_boxes_as_transformers(ours, theirs, "GroundingDinoBiMultiHeadAttention")
