"""Patches: replacements of library internals that compute the same outputs faster or in less
memory, each with its equivalence test beside it in ``tests/models/patches/``:

- ``deformable``: the multi-scale deformable attention of Grounding DINO and of OmDet-Turbo's
  decoder as one weighted gather;
- ``fusion``: Grounding DINO's text-image fusion attention with its projections folded into
  the text side;
- ``strips``: MobileSAM's TinyViT image encoder with its first stages run strip by strip;
- ``anchors``: OmDet-Turbo's decoder anchors kept in float32 under bfloat16 autocast (the
  boxes then stay those of float32);
- ``forwards``: how one is installed (on a model's instances, only when the library's
  ``forward`` has the signature it was written for; otherwise the library's own is kept).

Nothing is changed by importing: the loaders (``GroundingDinoDetector.from_pretrained``,
``OmDetTurboDetector.from_pretrained``, ``MobileSamSegmenter.from_checkpoint``) call
:func:`apply_to_grounding_dino`, :func:`apply_to_omdet_turbo` and :func:`apply_to_mobile_sam`
on the model they loaded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported by the patches themselves, when one is applied
    from torch import nn


def apply_to_grounding_dino(model: nn.Module) -> dict[str, int]:
    """Install the deformable-attention and fusion-attention patches on a loaded
    ``GroundingDinoForObjectDetection``.

    Returns:
        How many modules each patch replaced the ``forward`` of, e.g.
        ``{"deformable": 12, "fusion": 6}`` for Grounding DINO tiny (6 encoder layers, 6
        decoder layers); 0 for a patch whose target has another signature (logged).
    """
    from models.patches import deformable, fusion

    return {"deformable": deformable.install(model), "fusion": fusion.install(model)}


def apply_to_mobile_sam(model: nn.Module) -> dict[str, int]:
    """Install the strips patch on a loaded MobileSAM ``Sam`` (its TinyViT image encoder).

    Returns:
        ``{"strips": 1}`` for a vit_t model; 0 when the encoder is not a TinyViT with
        the expected ``forward`` (logged).
    """
    from models.patches import strips

    return {"strips": strips.install(model)}


def apply_to_omdet_turbo(model: nn.Module) -> dict[str, int]:
    """Install the deformable-attention patch (its fusion decoder's cross-attention is the
    same ``MultiScaleDeformableAttention``) and the float32 anchors on a loaded
    ``OmDetTurboForObjectDetection``.

    Returns:
        ``{"deformable": 6, "anchors": 1}`` for OmDet-Turbo tiny (6 decoder layers, one
        decoder); 0 for a patch whose target has another signature (logged).
    """
    from models.patches import anchors, deformable

    return {"deformable": deformable.install(model), "anchors": anchors.install(model)}
