"""Grounding DINO's text-image fusion attention with its projections moved to the text side.

Each encoder layer of Grounding DINO (Liu et al. 2023, arXiv:2303.05499) starts with a
bidirectional cross-attention between the N image tokens (8,160 at our work size) and the T
caption tokens (up to 256; 5-15 for a short prompt): transformers'
``GroundingDinoBiMultiHeadAttention.forward``, 4 heads of 256 channels. It projects the image
tokens to queries and values (two (N, 256) x (256, 1024) products), multiplies queries by the
text keys into logits L (4, N, T), and then makes about ten full passes over L: subtract its
global maximum, clamp, subtract the per-word maximum of the transposed view, clamp, fill
masks (repeated per head), a softmax over words and one over image tokens (on a transposed,
non-contiguous copy), plus the copies that reshape queries, values and outputs per head and
autocast's casts; then the two attention products and the image output projection, another
(N, 1024) x (1024, 256) product. Six large products and ~10 passes of 8.4 M values.

:func:`fused_forward` computes the same outputs with three large products and two softmaxes,
by associativity (per head h, scale s, x an image token, k_t the text keys):

* logits: ``s (W_q x + b_q) . k_t = x . (s W_q^T k_t) + s b_q . k_t``: the factors
  ``s W_q,h^T k_t``, (256, T) per head, form one (256, H*T) matrix, so L is one
  (N, 256) x (256, H*T) product laid out (N, H, T), and the query projection disappears;
* image output: ``out(concat_h P_h V_h) = sum_h P_h (V_h W_o,h^T) + b_o`` with V the text
  values: one (N, H*T) x (H*T, 256) product straight into the output layout;
* text output: ``P_h (X W_v,h^T + b_v,h) = (P_h X) W_v,h^T + b_v,h`` because each row of
  the softmax P_h sums to 1: one (H*T, N) x (N, 256) product (the softmax read transposed by
  the BLAS, no copy), and the image value projection disappears.

The small factors (T x 256 x 256 per head) are computed in float32 from the stored weights
(bfloat16 ones exactly) and rounded once to the large products' dtype. The softmaxes are
taken directly: over the last axis of the (N, H, T) layout for image-to-text, over its
image-token axis (vectorised along the contiguous H*T columns, no transposed copy) for
text-to-image, with masks broadcast, and
skipped when they hold no True (batch 1 at inference: the model passes all-False masks).
The original's shifts are dropped: softmax is shift-invariant, so subtracting the global and
per-word maxima changes only rounding; the +-50,000 clamp after them changes a value only if
the logits span more than 50,000, which :func:`fused_forward` checks (one ``aminmax`` pass)
and then, or for NaN / inf, runs the original instead. So does training with dropout.

Equivalence (tests/models/patches/test_fusion.py): in float32 the outputs and the returned weights
match the original within 1e-5 (measured ~2e-6 on the full-size model's activations), and a
whole float32 detector pass gives the same boxes (full-size model: all 900 on the 4 photos;
with its layer scale set to 1, 899 on one photo, a near-tie of the top-k query choice).
Under bfloat16 autocast the original rounds L, L's two shifted copies, the queries and the
values to bfloat16; this rounds L, the two small factors and the products. On the full-size
model's activations (captions of 8 and 256 tokens) its deviation from float32 is at most
the original's in RMS (0-40% smaller) and at most 12% above it in maximum (mostly below).
The detector's boxes keep a partner of IoU >= 0.95 in the float32 reference for 98.1-98.8%
of the 900 queries on ../shared/photos (current code: 98.3-98.9%; both lose the rest to ties
among random weights' saturated scores) and, with the random model's fusion layer scale
(1e-4, which hides the attention) set to 1 everywhere, 99.1-99.8% (current code: 99.0-99.7%).

Measured on this 2-core machine (2 threads, glibc malloc tuned), medians: one attention call
at N = 8,160 under bfloat16 autocast, T = 256 65 -> 30 ms and T = 10 28 -> 6 ms (float32:
178 -> 84 ms and 85 -> 8 ms). Whole detector, full-size random weights, alternated runs:
a vocabulary pass (3 captions of ~250 tokens) 2.92 -> 2.46 s in bfloat16 (its 18 fusion
layers 1.04 -> 0.52 s) and 7.47 -> 5.07 s in float32; a 3-phrase ``detect`` 0.78 -> 0.66 s
(fusion layers 0.18 -> 0.06 s) and 1.88 -> 1.32 s.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from models.patches.forwards import install_forward, original_forward

_PARAMETERS = (
    "self", "vision_features", "text_features", "vision_attention_mask", "text_attention_mask",
)  # fmt: skip

#: transformers clamps the shifted logits to +-50,000, which changes nothing while they span
#: less; the margin covers bfloat16 rounding (spacing 256 there) of the shifted values.
_SAFE_SPREAD = 40_000.0

#: ((image output, its weights), (text output, its weights)), as transformers returns them.
Outputs = tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def _weights(linear: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A linear layer's weight and bias in float32 (bfloat16-stored ones exactly)."""
    bias = None if linear.bias is None else linear.bias.float()
    return linear.weight.float(), bias


def _fused(
    self: nn.Module,
    vision_features: torch.Tensor,
    text_features: torch.Tensor,
    vision_attention_mask: torch.Tensor | None,
    text_attention_mask: torch.Tensor | None,
    dtype: torch.dtype,
) -> Outputs | None:
    """:func:`fused_forward`'s computation, run with autocast off: the three large products
    and the softmaxes in ``dtype``, the small factors in float32. None when the logits span
    more than ``_SAFE_SPREAD`` (or hold NaN / inf): then the original's clamp may matter."""
    batch, tokens, vision_dim = vision_features.shape
    words = text_features.shape[1]
    heads, head_dim = self.num_heads, self.head_dim
    columns = heads * words  # the logits' columns, head-major: h * T + t
    f32 = torch.float32
    text = text_features.to(f32)
    vision = vision_features.to(dtype)

    # Logits (B, N, H*T): x . (s W_q,h^T k_t) + s b_q,h . k_t; [b, n, h * T + t] is the
    # original's attn_weights[b * H + h, n, t].
    key_weight, key_bias = _weights(self.text_proj)
    key = F.linear(text, key_weight, key_bias).mul_(self.scale)
    key = key.view(batch, words, heads, head_dim)
    query_weight, query_bias = _weights(self.vision_proj)
    kernel = torch.einsum("hdc,bthd->bcht", query_weight.view(heads, head_dim, vision_dim), key)
    kernel = kernel.reshape(batch, vision_dim, columns).to(dtype)
    if query_bias is None:
        scores = torch.bmm(vision, kernel)
    else:
        offset = torch.einsum("hd,bthd->bht", query_bias.view(heads, head_dim), key)
        scores = torch.baddbmm(offset.reshape(batch, 1, columns).to(dtype), vision, kernel)
    if scores.numel() == 0:
        return None
    low, high = torch.aminmax(scores)
    if not float(high) - float(low) <= _SAFE_SPREAD:  # NaN compares False too
        return None

    # Both softmaxes while the logits are fresh in cache; masks broadcast, not repeated.
    vision_scores = scores.view(batch, tokens, heads, words)
    if text_attention_mask is not None and bool(text_attention_mask.any()):
        mask = text_attention_mask[:, None, None, :]
        vision_scores = vision_scores.masked_fill(mask, float("-inf"))
    vision_probs = vision_scores.softmax(-1).view(batch, tokens, columns)  # over words
    text_scores = scores
    if vision_attention_mask is not None and bool(vision_attention_mask.any()):
        text_scores = scores.masked_fill(vision_attention_mask[:, :, None], float("-inf"))
    text_probs = text_scores.softmax(1)  # over image tokens
    del scores, vision_scores, text_scores

    # Image output: sum_h P_h (V_h W_o,h^T) + b_o, V the text values.
    value_weight, value_bias = _weights(self.values_text_proj)
    text_values = F.linear(text, value_weight, value_bias).view(batch, words, heads, head_dim)
    out_weight, out_bias = _weights(self.out_vision_proj)
    out_dim = out_weight.shape[0]
    mix = torch.einsum("bthd,chd->bhtc", text_values, out_weight.view(out_dim, heads, head_dim))
    mix = mix.reshape(batch, columns, out_dim).to(dtype)
    if out_bias is None:
        vision_output = torch.bmm(vision_probs, mix)
    else:
        vision_output = torch.baddbmm(out_bias.to(dtype), vision_probs, mix)

    # Text output: out((P_h X) W_v,h^T + b_v,h), rows of P_h summing to 1.
    gathered = torch.bmm(text_probs.transpose(1, 2), vision).to(f32)
    gathered = gathered.view(batch, heads, words, vision_dim)
    value_weight, value_bias = _weights(self.values_vision_proj)
    value_weight = value_weight.view(heads, head_dim, vision_dim)
    text_heads = torch.einsum("bhtc,hdc->bthd", gathered, value_weight)
    if value_bias is not None:
        text_heads = text_heads + value_bias.view(heads, head_dim)
    out_weight, out_bias = _weights(self.out_text_proj)
    text_output = F.linear(text_heads.reshape(batch, words, heads * head_dim), out_weight, out_bias)

    # The original's (B*H, N, T) and (B*H, T, N) weights: views for one image, copies for more.
    vision_weights = vision_probs.view(batch, tokens, heads, words).permute(0, 2, 1, 3)
    text_weights = text_probs.view(batch, tokens, heads, words).permute(0, 2, 3, 1)
    return (
        (vision_output, vision_weights.reshape(batch * heads, tokens, words)),
        (text_output.to(dtype), text_weights.reshape(batch * heads, words, tokens)),
    )


def fused_forward(
    self: nn.Module,
    vision_features: torch.Tensor,
    text_features: torch.Tensor,
    vision_attention_mask: torch.Tensor | None = None,
    text_attention_mask: torch.Tensor | None = None,
) -> Outputs:
    """Drop-in ``forward`` of transformers' ``GroundingDinoBiMultiHeadAttention`` (same
    arguments and results), with the projections folded into the text side (module
    docstring). Runs the original instead when training with dropout, or when the logits
    span more than the original's clamp allows for (or are not finite).

    Args:
        vision_features: (B, N, vision_dim) image tokens, float32 (or the model's dtype).
        text_features: (B, T, text_dim) caption tokens.
        vision_attention_mask: (B, N) bool, True for padding image tokens (text tokens do not
            attend to them), or None.
        text_attention_mask: (B, T) bool, True for padding text tokens (image tokens do not
            attend to them), or None.

    Returns:
        ``((vision_output, vision_weights), (text_output, text_weights))``: outputs (B, N,
        vision_dim) and (B, T, text_dim); softmax weights (B*H, N, T) over words and
        (B*H, T, N) over image tokens (views of (B, N, H, T)-laid-out results for B = 1,
        copies for more). All in the autocast dtype under autocast (as the original's
        linear layers give), else in ``vision_features``' dtype.

    Raises:
        ValueError: the two feature tensors differ in batch size, or their widths are not
            the module's.
    """
    if self.training and self.dropout > 0:
        return original_forward(self)(
            vision_features, text_features, vision_attention_mask, text_attention_mask
        )
    if (
        vision_features.dim() != 3
        or text_features.dim() != 3
        or vision_features.shape[0] != text_features.shape[0]
        or vision_features.shape[2] != self.vision_dim
        or text_features.shape[2] != self.text_dim
    ):
        raise ValueError(
            f"expected (B, N, {self.vision_dim}) image and (B, T, {self.text_dim}) text "
            f"features, got {tuple(vision_features.shape)} and {tuple(text_features.shape)}"
        )
    device_type = vision_features.device.type
    if torch.is_autocast_enabled(device_type):
        dtype = torch.get_autocast_dtype(device_type)
    else:
        dtype = vision_features.dtype
    with torch.autocast(device_type, enabled=False):
        result = _fused(
            self, vision_features, text_features, vision_attention_mask, text_attention_mask,
            dtype,
        )  # fmt: skip
    if result is None:
        return original_forward(self)(
            vision_features, text_features, vision_attention_mask, text_attention_mask
        )
    return result


def install(model: nn.Module) -> int:
    """Use :func:`fused_forward` in every ``GroundingDinoBiMultiHeadAttention`` of ``model``
    (on the instances; the class is left alone).

    Returns:
        How many modules now use it (one per encoder layer); 0 (logged) when the installed
        transformers' forward has another signature, in which case its own is kept.
    """
    return install_forward(model, "GroundingDinoBiMultiHeadAttention", fused_forward, _PARAMETERS)
