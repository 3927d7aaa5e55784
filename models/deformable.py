"""Multi-scale deformable attention's sampling step with its queries taken in chunks.

Deformable DETR (Zhu et al. 2021, arXiv:2010.04159), which Grounding DINO's encoder and
decoder use, samples each query's points from every feature level with bilinear
interpolation and sums them with learnt weights. transformers' pure-PyTorch version
(``MultiScaleDeformableAttention.forward`` in ``modeling_grounding_dino``, the path taken on
CPUs) does it for all queries at once: at Grounding DINO's work size (512x768, 8,160 image
tokens, 8 heads, 4 levels x 4 points) its ``grid_sample`` results, their stack and the
weighted product are four (8, 32, 8160, 16) float32 arrays held together, ~390 MB of one
pass's ~455 MB peak above the worker's steady memory. :func:`chunked_forward` runs the same
operations on ``QUERY_CHUNK`` queries at a time: every output element is computed by the same
operations on the same inputs (bit-identical, tests/models/test_deformable.py), in the same
time, and a pass's peak falls to ~166 MB above the steady level (measured with one thread).
"""

from __future__ import annotations

import inspect
import logging
import types
from typing import Any

import torch
from torch import nn

log = logging.getLogger(__name__)

#: Queries sampled at once: 2,048 of 8,160 keeps a quarter of the sampled values alive.
QUERY_CHUNK = 2048

_PARAMETERS = (
    "self", "value", "value_spatial_shapes", "value_spatial_shapes_list", "level_start_index",
    "sampling_locations", "attention_weights", "im2col_step",
)  # fmt: skip


def chunked_forward(
    self: nn.Module,
    value: torch.Tensor,
    value_spatial_shapes: torch.Tensor,
    value_spatial_shapes_list: list[tuple[int, int]],
    level_start_index: torch.Tensor,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
    im2col_step: int,
) -> torch.Tensor:
    """Drop-in ``forward`` of transformers' ``MultiScaleDeformableAttention`` (same
    arguments), computing ``QUERY_CHUNK`` queries at a time.

    Args:
        value: (B, S, heads, dim) projected features of all levels, S = sum of h * w.
        value_spatial_shapes, level_start_index, im2col_step: unused here (as in the
            original's PyTorch path); kept for the signature.
        value_spatial_shapes_list: [(h, w)] per level.
        sampling_locations: (B, Q, heads, levels, points, 2) in [0, 1] (x, y of each level).
        attention_weights: (B, Q, heads, levels, points).

    Returns:
        (B, Q, heads * dim), in the dtype the original returns (that of the weighted sum).
    """
    batch_size, _, num_heads, hidden_dim = value.shape
    _, num_queries, _, num_levels, num_points, _ = sampling_locations.shape
    value_list = value.split([h * w for h, w in value_spatial_shapes_list], dim=1)
    heads = batch_size * num_heads
    levels = [
        value_list[level].flatten(2).transpose(1, 2).reshape(heads, hidden_dim, h, w)
        for level, (h, w) in enumerate(value_spatial_shapes_list)
    ]
    weights = attention_weights.transpose(1, 2).reshape(
        heads, 1, num_queries, num_levels * num_points
    )
    output: torch.Tensor | None = None
    for start in range(0, num_queries, QUERY_CHUNK):
        part = slice(start, start + QUERY_CHUNK)
        grids = 2 * sampling_locations[:, part] - 1
        samples = [
            nn.functional.grid_sample(
                levels[level],
                grids[:, :, :, level].transpose(1, 2).flatten(0, 1),
                mode="bilinear",
                padding_mode="zeros",
                align_corners=False,
            )
            for level in range(num_levels)
        ]
        chunk = (torch.stack(samples, dim=-2).flatten(-2) * weights[:, :, part]).sum(-1)
        if output is None:
            output = chunk.new_empty((heads, hidden_dim, num_queries))
        output[:, :, part] = chunk
        del samples, grids, chunk
    assert output is not None
    return output.view(batch_size, num_heads * hidden_dim, num_queries).transpose(1, 2).contiguous()


def install(model: nn.Module) -> int:
    """Use :func:`chunked_forward` in every ``MultiScaleDeformableAttention`` of ``model``
    (on the instances; the class is left alone).

    Returns:
        How many modules now use it; 0 (logged) when the installed transformers' forward has
        another signature, in which case its own forward is kept.
    """
    modules = [m for m in model.modules() if type(m).__name__ == "MultiScaleDeformableAttention"]
    if not modules:
        return 0
    parameters = tuple(inspect.signature(type(modules[0]).forward).parameters)
    if parameters != _PARAMETERS:
        log.warning("MultiScaleDeformableAttention.forward%s is not the one chunked_forward "
                    "replaces; keeping transformers' own", parameters)  # fmt: skip
        return 0
    for module in modules:
        module.forward = types.MethodType(chunked_forward, module)
    return len(modules)


def original_forward(module: Any) -> Any:
    """The class's own (unchunked) forward bound to ``module`` (tests compare the two)."""
    return types.MethodType(type(module).forward, module)
