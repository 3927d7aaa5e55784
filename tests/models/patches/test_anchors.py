"""OmDet-Turbo's decoder anchors stay float32 under bfloat16 autocast; in float32 nothing
changes."""

from __future__ import annotations

import torch

from models.patches import anchors


def decoder_of(omdet_turbo_dir):
    from transformers import OmDetTurboForObjectDetection

    model = OmDetTurboForObjectDetection.from_pretrained(str(omdet_turbo_dir),
                                                         local_files_only=True)  # fmt: skip
    return model.eval().decoder


def test_anchors_are_float32_whatever_dtype_is_asked(omdet_turbo_dir):
    decoder = decoder_of(omdet_turbo_dir)
    shapes = ((8, 8), (4, 4), (2, 2))
    theirs, _ = decoder.generate_anchors(shapes, dtype=torch.bfloat16)
    assert anchors.install(torch.nn.Sequential(decoder)) == 1
    ours, valid = decoder.generate_anchors(shapes, dtype=torch.bfloat16)
    exact, exact_valid = type(decoder).generate_anchors(decoder, shapes, dtype=torch.float32)
    assert theirs.dtype == torch.bfloat16, "transformers' own follows the features' dtype"
    assert ours.dtype == torch.float32 and torch.equal(ours, exact)
    assert torch.equal(valid, exact_valid) and ours.shape == (1, 64 + 16 + 4, 4)
    finite = torch.isfinite(exact)
    assert (theirs[finite].float() - exact[finite]).abs().max() > 1e-3  # what it avoids


def test_float32_decoding_is_unchanged(omdet_turbo_dir):
    """In float32 the patched decoder makes the same call: the same outputs, bit for bit."""
    decoder = decoder_of(omdet_turbo_dir)
    config = decoder.config
    generator = torch.Generator().manual_seed(0)
    features = [torch.randn(1, c, s, s, generator=generator)
                for c, s in zip(config.vision_features_channels, (8, 4, 2), strict=True)]
    classes = torch.randn(3, 1, config.class_embed_dim, generator=generator)
    task = torch.randn(5, 1, config.class_embed_dim, generator=generator)
    task_mask = torch.ones(1, 5, dtype=torch.long)
    with torch.inference_mode():
        expected = decoder(features, classes, task, task_mask, return_dict=True)
        anchors.install(torch.nn.Sequential(decoder))
        got = decoder(features, classes, task, task_mask, return_dict=True)
    assert torch.equal(got.decoder_coords, expected.decoder_coords)
    assert torch.equal(got.decoder_classes, expected.decoder_classes)
