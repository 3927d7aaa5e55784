"""MobileSAM's prompt encoder and mask decoder for one set of taps, computed in an order that
costs well under half the multiply-adds of ``MaskDecoder.predict_masks`` per tap: the graphs the
page runs (:mod:`models.segment.onnx_decoder` exports them). :class:`ImageProjections` runs once
per photo, :class:`TapDecoder` once per tap.

It is the function of ``mobile_sam.utils.onnx.SamOnnxModel(model, return_single_mask=True)``
without a mask prompt, giving its low-resolution logits, rearranged (same weights, float32)
as follows; the logits agree to float32 rounding (tests/models/segment/test_onnx_decoder.py).

- The first layer's attention projections of the image tokens (keys and values of tokens to
  image, queries of image to tokens) do not depend on the taps: :class:`ImageProjections`
  computes them once per photo (3 x 134 M multiply-adds), and each tap uses them as SAM's
  ``Attention`` does.
- The other attentions between the T prompt tokens (T = 5 output tokens + the points, ~7)
  and the L = 4096 image tokens project every image token through linear layers, 256 -> 128
  per token (~134 M multiply-adds each): k/v of tokens to image and q/out of image to tokens
  in the second layer, k/v of the final attention, and the first layer's image-to-tokens
  output projection. Those projections are linear, so they are moved to the token side
  ("absorbed"): tokens-to-image scores are ``(q_h W_k,h) . x_i`` and the output is
  ``(P_h X) W_v,h^T`` (each row of the softmax ``P_h`` sums to 1, so the value bias passes
  through); image-to-tokens scores are ``x_i . (W_q,h^T k_h,t)`` and the output is
  ``sum_(h,t) P_i,h,t (W_out,h v_h,t)``. Each becomes one product of the L image tokens with
  8 heads x T token vectors (~58 M multiply-adds).
- The output upscaling (two 2x2 stride-2 transposed convolutions, each a per-pixel linear map
  to its 2x2 children) runs as two matrix products on channels-last pixels, with the
  channel-wise LayerNorm2d as ``layer_norm`` over the last axis; the pixels are put back in
  image order once, on the single 256x256 output.
- Only the image tokens under the photo are upscaled (the rest of SAM's 1024x1024 input is
  padding, a third of it for a 3:2 photo; :func:`covering_tokens`).
- The mask is chosen before it is computed: ``SamOnnxModel.select_masks``' rule (the best
  predicted IoU of the three multimask outputs for one tap, the single-mask output for more),
  then only that mask's hypernetwork product (``h @ X^T``, which ONNX Runtime runs as one
  transposed GEMM; ``X @ h`` with a 1-D ``h`` is ~100x slower there).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def _heads(x: torch.Tensor, count: int) -> torch.Tensor:
    """(n, count * d) -> (count, n, d)."""
    return x.reshape(x.shape[0], count, -1).transpose(0, 1)


def image_tokens(model: Any, image_embeddings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The two-way transformer's image tokens (L, C) and their positional encoding (L, C),
    float32, from a (1, C, 64, 64) image embedding: the embedding plus the dense prompt
    embedding, which without a mask prompt is one learnt vector (``no_mask_embed``)."""
    channels = image_embeddings.shape[1]
    encoder = model.prompt_encoder
    keys = image_embeddings[0].reshape(channels, -1).T + encoder.no_mask_embed.weight
    return keys, encoder.get_dense_pe()[0].reshape(channels, -1).T


class ImageProjections(nn.Module):
    """The first transformer layer's image-side projections, once per photo.

    Input: ``image_embeddings`` (1, 256, 64, 64) float32.
    Outputs, each (heads, L, d) = (8, 4096, 16) float32, split by head as ``Attention`` does:
        image_keys: tokens-to-image keys, ``k_proj(tokens + positional encoding)``;
        image_values: tokens-to-image values, ``v_proj(tokens)``;
        image_queries: image-to-tokens queries, ``q_proj(tokens + positional encoding)``.
    """

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    @torch.no_grad()
    def forward(self, image_embeddings: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """See the class docstring."""
        keys, key_pe = image_tokens(self.model, image_embeddings)
        layer = self.model.mask_decoder.transformer.layers[0]
        to_image, to_tokens = layer.cross_attn_token_to_image, layer.cross_attn_image_to_token
        return (_heads(to_image.k_proj(keys + key_pe), to_image.num_heads),
                _heads(to_image.v_proj(keys), to_image.num_heads),
                _heads(to_tokens.q_proj(keys + key_pe), to_tokens.num_heads))  # fmt: skip


def tokens_to_projected_image(
    attn: Any, q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor
) -> torch.Tensor:
    """``attn(q, k, v)`` for T token queries on image keys and values already projected and
    split by head ((h, L, d), :class:`ImageProjections`): SAM's ``Attention`` from there on.

    Returns:
        (T, C) float32.
    """
    count = q.shape[0]
    qh = _heads(attn.q_proj(q), attn.num_heads)  # (h, T, d)
    weights = torch.softmax(qh @ keys.transpose(1, 2) / math.sqrt(qh.shape[-1]), dim=-1)
    return attn.out_proj((weights @ values).transpose(0, 1).reshape(count, -1))


def projected_image_to_tokens(
    attn: Any, queries: torch.Tensor, k: torch.Tensor, v: torch.Tensor
) -> torch.Tensor:
    """``attn(q, k, v)`` for image queries already projected and split by head ((h, L, d),
    :class:`ImageProjections`) on T tokens, the output projection absorbed into the token side
    (as :func:`image_to_tokens`).

    Returns:
        (L, C) float32.
    """
    heads = attn.num_heads
    count = k.shape[0]
    kh = _heads(attn.k_proj(k), heads)  # (h, T, d)
    weights = torch.softmax(queries @ kh.transpose(1, 2) / math.sqrt(kh.shape[-1]), dim=-1)
    vh = _heads(attn.v_proj(v), heads)  # (h, T, d)
    w_out = attn.out_proj.weight  # (C, h * d)
    outputs = vh @ w_out.reshape(w_out.shape[0], heads, -1).permute(1, 2, 0)  # (h, T, C)
    weights = weights.transpose(0, 1).reshape(-1, heads * count)  # (L, h * T)
    return weights @ outputs.reshape(heads * count, -1) + attn.out_proj.bias


def tokens_to_image(attn: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``attn(q, k, v)`` (a mobile_sam ``Attention``) for T token queries on L image tokens,
    with the image-side projections absorbed into the token side.

    Args:
        attn: the layer (q/k/v/out projections, ``num_heads``, ``internal_dim``).
        q: (T, C) float32 token queries (with their positional embedding).
        k: (L, C) float32 image keys (with theirs); v: (L, C) float32 image values.

    Returns:
        (T, C) float32, ``attn(q[None], k[None], v[None])[0]`` up to float rounding.
    """
    heads = attn.num_heads
    dim = attn.internal_dim // heads
    count = q.shape[0]
    qh = _heads(attn.q_proj(q), heads)  # (h, T, d)
    absorbed = qh @ attn.k_proj.weight.reshape(heads, dim, -1)  # (h, T, C)
    bias = (qh * attn.k_proj.bias.reshape(heads, 1, dim)).sum(-1, keepdim=True)  # (h, T, 1)
    scores = (absorbed.reshape(heads * count, -1) @ k.T).reshape(heads, count, -1) + bias
    weights = torch.softmax(scores / math.sqrt(dim), dim=-1)  # (h, T, L)
    mixed = (weights.reshape(heads * count, -1) @ v).reshape(heads, count, -1)  # (h, T, C)
    w_v = attn.v_proj.weight.reshape(heads, dim, -1).transpose(1, 2)  # (h, C, d)
    out = mixed @ w_v + attn.v_proj.bias.reshape(heads, 1, dim)  # rows of weights sum to 1
    return attn.out_proj(out.transpose(0, 1).reshape(count, -1))


def image_to_tokens(attn: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``attn(q, k, v)`` for L image-token queries on T tokens, with the image-side query and
    output projections absorbed into the token side.

    Args:
        attn: the layer.
        q: (L, C) float32 image queries (with their positional embedding).
        k: (T, C) float32 token keys (with theirs); v: (T, C) float32 token values.

    Returns:
        (L, C) float32, ``attn(q[None], k[None], v[None])[0]`` up to float rounding.
    """
    heads = attn.num_heads
    dim = attn.internal_dim // heads
    count = k.shape[0]
    kh = _heads(attn.k_proj(k), heads)  # (h, T, d)
    absorbed = kh @ attn.q_proj.weight.reshape(heads, dim, -1)  # (h, T, C)
    bias = (kh * attn.q_proj.bias.reshape(heads, 1, dim)).sum(-1)  # (h, T)
    scores = (q @ absorbed.reshape(heads * count, -1).T).reshape(-1, heads, count) + bias
    weights = torch.softmax(scores / math.sqrt(dim), dim=-1)  # (L, h, T)
    vh = _heads(attn.v_proj(v), heads)  # (h, T, d)
    w_out = attn.out_proj.weight  # (C, h * d)
    outputs = vh @ w_out.reshape(w_out.shape[0], heads, dim).permute(1, 2, 0)  # (h, T, C)
    return weights.reshape(-1, heads * count) @ outputs.reshape(heads * count, -1) + (
        attn.out_proj.bias
    )


class TapDecoder(nn.Module):
    """One mask for one set of point prompts on one image embedding (see the module docstring).

    Inputs of :meth:`forward`, as ``SamOnnxModel`` takes them:
        image_embeddings: (1, 256, 64, 64) float32.
        image_keys, image_values, image_queries: (8, 4096, 16) float32, the outputs of
            :class:`ImageProjections` for the same embedding.
        point_coords: (1, N, 2) float32, (x, y) in encoder-input pixels, SAM's padding point
            (0, 0) last.
        point_labels: (1, N) float32, 1 object, 0 background, -1 the padding point.
        input_size: (2,) float32, (h, w) of the encoder input (the photo resized to 1024 on its
            long side).

    Outputs:
        low_res_masks: (1, 1, 4 * rows, 4 * cols) float32, the top-left part of SAM's 256x256
            low-res logits (which cover the padded 1024x1024 input) that the mask of the (h, w)
            input reads (:func:`covering_tokens`); a pixel is in the mask where the bilinear
            upsampling of the 256x256 logits is > 0.
        iou_predictions: (1, 1) float32, the mask's predicted IoU.
    """

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model
        self.img_size = model.image_encoder.img_size

    def _embed_points(self, coords: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """(1, N, 2), (1, N) -> (N, C): ``SamOnnxModel._embed_points`` without a batch."""
        encoder = self.model.prompt_encoder
        embedding = encoder.pe_layer._pe_encoding((coords[0] + 0.5) / self.img_size)
        labels = labels[0].unsqueeze(-1)
        embedding = embedding * (labels != -1)
        embedding = embedding + encoder.not_a_point_embed.weight * (labels == -1)
        for i in range(encoder.num_point_embeddings):
            embedding = embedding + encoder.point_embeddings[i].weight * (labels == i)
        return embedding

    def _transformer(
        self,
        tokens: torch.Tensor,
        keys: torch.Tensor,
        key_pe: torch.Tensor,
        projected: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``TwoWayTransformer.forward`` on (T, C) tokens and (L, C) image tokens, the first
        layer's image projections given (``projected``: keys, values, queries)."""
        transformer = self.model.mask_decoder.transformer
        image_keys, image_values, image_queries = projected
        queries = tokens
        for i, layer in enumerate(transformer.layers):
            if layer.skip_first_layer_pe:
                queries = layer.self_attn(q=queries[None], k=queries[None], v=queries[None])[0]
            else:
                q = (queries + tokens)[None]
                queries = queries + layer.self_attn(q=q, k=q, v=queries[None])[0]
            queries = layer.norm1(queries)
            to_image, to_tokens = layer.cross_attn_token_to_image, layer.cross_attn_image_to_token
            if i == 0:
                attended = tokens_to_projected_image(to_image, queries + tokens, image_keys,
                                                     image_values)  # fmt: skip
            else:
                attended = tokens_to_image(to_image, queries + tokens, keys + key_pe, keys)
            queries = layer.norm2(queries + attended)
            queries = layer.norm3(queries + layer.mlp(queries))
            if i == 0:
                attended = projected_image_to_tokens(to_tokens, image_queries, queries + tokens,
                                                     queries)  # fmt: skip
            else:
                attended = image_to_tokens(to_tokens, keys + key_pe, queries + tokens, queries)
            keys = layer.norm4(keys + attended)
        attended = tokens_to_image(transformer.final_attn_token_to_image, queries + tokens,
                                   keys + key_pe, keys)  # fmt: skip
        return transformer.norm_final_attn(queries + attended), keys

    def _upscale(self, keys: torch.Tensor) -> torch.Tensor:
        """``output_upscaling`` of (n, C) image tokens, channels last: returns (n * 16, C / 8)
        features, each token's 4x4 children in (a, b, c, d) order (row offset 2a + c, column
        offset 2b + d)."""
        first, norm, _, second, _ = self.model.mask_decoder.output_upscaling
        weight = first.weight.permute(0, 2, 3, 1).reshape(first.weight.shape[0], -1)
        x = (keys @ weight).reshape(-1, first.weight.shape[1]) + first.bias
        x = F.gelu(F.layer_norm(x, tuple(norm.weight.shape), norm.weight, norm.bias, norm.eps))
        weight = second.weight.permute(0, 2, 3, 1).reshape(second.weight.shape[0], -1)
        return F.gelu((x @ weight).reshape(-1, second.weight.shape[1]) + second.bias)

    @torch.no_grad()
    def forward(
        self,
        image_embeddings: torch.Tensor,
        image_keys: torch.Tensor,
        image_values: torch.Tensor,
        image_queries: torch.Tensor,
        point_coords: torch.Tensor,
        point_labels: torch.Tensor,
        input_size: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """See the class docstring."""
        model = self.model
        decoder = model.mask_decoder
        channels = image_embeddings.shape[1]
        side = model.prompt_encoder.image_embedding_size[0]  # 64: a square grid of tokens
        tokens = torch.cat([decoder.iou_token.weight, decoder.mask_tokens.weight,
                            self._embed_points(point_coords, point_labels)])  # fmt: skip
        keys, key_pe = image_tokens(model, image_embeddings)
        queries, keys = self._transformer(tokens, keys, key_pe,
                                          (image_keys, image_values, image_queries))  # fmt: skip

        count = decoder.num_mask_tokens
        iou = decoder.iou_prediction_head(queries[0])  # (count,)
        # SamOnnxModel.select_masks: one tap (two points with the padding one) takes the best
        # of the three multimask outputs, more taps the single-mask output (index 0).
        reweight = torch.zeros(count)
        reweight[0] = 1000.0
        best = torch.argmax(iou + (point_coords.shape[1] - 2.5) * reweight)
        mlps = decoder.output_hypernetworks_mlps
        hyper = torch.stack([mlp(queries[1 + i]) for i, mlp in enumerate(mlps)])

        rows, cols = covering_tokens(input_size, side)
        keys = keys.reshape(side, side, channels)[:rows, :cols].reshape(-1, channels)
        features = self._upscale(keys)  # (rows * cols * 16, C / 8)
        logits = hyper[best][None] @ features.T  # (1, rows * cols * 16)
        logits = logits.reshape(rows, cols, 2, 2, 2, 2).permute(0, 2, 4, 1, 3, 5)
        return logits.reshape(1, 1, 4 * rows, 4 * cols), iou[best].reshape(1, 1)


def covering_tokens(input_size: torch.Tensor, side: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """How many rows and columns of image tokens (from the top left) the low-res logits need
    for the mask of an (h, w) encoder input: ``min(side, floor(h / 16) + 2)`` and the same for
    w, as int64 0-d tensors (traced into the graph, they follow the ``input_size`` input).

    Each token makes 4x4 low-res logits, each logit covers 4x4 input pixels; the bilinear
    upsampling (align_corners=False, scale 1/4) of input row y reads low-res rows
    floor((y + 0.5) / 4 - 0.5) and the next, at most row floor((h - 3) / 4) + 1 for y < h, which
    lies in the first floor(h / 16) + 2 token rows. The padding beyond the photo is not needed.
    """
    size = input_size.to(torch.float32)
    tokens = torch.clamp(torch.floor(size / 16) + 2, max=side).to(torch.int64)
    return tokens[0], tokens[1]
