"""The patches are applied by the loaders, explicitly, and only there: a model loaded through
``from_pretrained`` / ``from_checkpoint`` runs the replacements, a model merely wrapped or
imported runs the libraries' own code."""

from __future__ import annotations

import torch

from models.patches import (
    anchors,
    apply_to_grounding_dino,
    apply_to_mobile_sam,
    apply_to_omdet_turbo,
    deformable,
    fusion,
    strips,
)


def _patched(model: torch.nn.Module, class_name: str, forward) -> list[bool]:
    """For each module of ``model`` of class ``class_name``: does it run ``forward``?"""
    return [getattr(m.forward, "__func__", None) is forward
            for m in model.modules() if type(m).__name__ == class_name]  # fmt: skip


def test_grounding_dino_loader_applies_both_patches(grounding_dino_dir):
    from models.detect.detector import GroundingDinoDetector

    detector = GroundingDinoDetector.from_pretrained(grounding_dino_dir, precision="float32")
    config = detector.model.config
    sampled = _patched(detector.model, "MultiScaleDeformableAttention", deformable.gathered_forward)
    fused = _patched(detector.model, "GroundingDinoBiMultiHeadAttention", fusion.fused_forward)
    assert sampled == [True] * (config.encoder_layers + config.decoder_layers)
    assert fused == [True] * config.encoder_layers


def test_wrapping_a_model_changes_nothing(grounding_dino_dir):
    from transformers import AutoProcessor, GroundingDinoForObjectDetection

    from models.detect.detector import GroundingDinoDetector

    model = GroundingDinoForObjectDetection.from_pretrained(
        str(grounding_dino_dir), local_files_only=True
    )
    processor = AutoProcessor.from_pretrained(str(grounding_dino_dir), local_files_only=True)
    detector = GroundingDinoDetector(model, processor, precision="float32")
    assert not any(_patched(detector.model, "MultiScaleDeformableAttention",
                            deformable.gathered_forward))  # fmt: skip
    counts = apply_to_grounding_dino(model)
    layers = model.config.encoder_layers
    assert counts == {"deformable": layers + model.config.decoder_layers, "fusion": layers}


def test_omdet_turbo_loader_applies_the_gather_to_its_decoder(omdet_turbo_dir):
    from transformers import OmDetTurboForObjectDetection

    from models.detect.omdet import OmDetTurboDetector

    detector = OmDetTurboDetector.from_pretrained(omdet_turbo_dir, precision="float32")
    layers = detector.model.config.decoder_num_layers
    name = "MultiScaleDeformableAttention"
    assert _patched(detector.model, name, deformable.gathered_forward) == [True] * layers
    plain = OmDetTurboForObjectDetection.from_pretrained(str(omdet_turbo_dir),
                                                         local_files_only=True)  # fmt: skip
    assert _patched(plain, name, deformable.gathered_forward) == [False] * layers
    assert apply_to_omdet_turbo(plain) == {"deformable": layers, "anchors": 1}
    assert detector.model.decoder.generate_anchors.__func__ is anchors.float32_anchors


def test_mobile_sam_loader_applies_the_strips(mobile_sam_checkpoint):
    from models.segment.segmenter import MobileSamSegmenter, import_mobile_sam

    segmenter = MobileSamSegmenter.from_checkpoint(mobile_sam_checkpoint)
    assert _patched(segmenter.model, "TinyViT", strips.strips_forward) == [True]

    plain = import_mobile_sam().sam_model_registry["vit_t"]()
    assert _patched(MobileSamSegmenter(plain).model, "TinyViT", strips.strips_forward) == [False]
    assert apply_to_mobile_sam(plain) == {"strips": 1}
    assert _patched(plain, "TinyViT", strips.strips_forward) == [True]
