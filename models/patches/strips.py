"""MobileSAM's TinyViT image encoder with its first stages run on horizontal strips.

The first stages (``patch_embed`` and ``layers[0]``: convolutions at 512x512 and 256x256 with
up to 256 channels) are the encoder's memory peak: ~+300 MiB of RSS on one 1024 px image,
each later stage ~+70-150 MiB on its own. They are convolutions, eval-mode BatchNorm (a
per-pixel affine map) and pointwise activations, so each of their output rows depends on a
few input rows only: computed strip by strip, each strip's input window widened by that
halo, they give the whole-image result in a fraction of the memory. The later stages
(attention over windows) and the neck then run as in ``TinyViT.forward``.

Measured on 2 cores (1, 3, 1024, 1024) channels_last float32, 2 threads, inference_mode,
glibc malloc as the worker tunes it (``MALLOC_MMAP_THRESHOLD_``/``MALLOC_TRIM_THRESHOLD_``),
``release_memory()`` before each run; peak RSS over idle (VmHWM after clear_refs) and time,
medians of 9 runs, one process per setting, several processes each:

=======  ====================  ===============  ==============================
strips   peak over idle (MiB)  time (s)         first stages alone (MiB, s)
=======  ====================  ===============  ==============================
1        369-381               0.567-0.581      304, 0.150
2        200-271               0.520-0.554      151, 0.114
4        140-177               0.525-0.539      150-163, 0.113
8        145-161               0.493-0.548      78, 0.107
16       151-162               0.553-0.570      58, 0.121
=======  ====================  ===============  ==============================

From 4 strips on, the peak is the later stages' (``layers[1]`` alone: ~+130 MiB), so more
strips only lower the first stages' share; 8 does that at no cost in time (smaller tensors
stay in cache: the first stages run faster in strips despite the halo's ~19% extra rows).
The output is bit-identical in channels_last (max abs difference 0.0) and within 2.4e-6
(outputs of scale ~3.4) in contiguous format, where oneDNN picks kernels per shape.
"""

from __future__ import annotations

import sys

import torch
from torch import nn

from models.patches.forwards import install_forward

_TINY_VIT_MODULE = "mobile_sam.modeling.tiny_vit_sam"

DEFAULT_STRIPS = 8  # see the table above


def encode_image(
    image_encoder: nn.Module, pixels: torch.Tensor, strips: int = DEFAULT_STRIPS
) -> torch.Tensor:
    """``image_encoder(pixels)``, with TinyViT's first stages computed strip by strip.

    Args:
        image_encoder: MobileSAM's image encoder (``sam.image_encoder``), in eval mode. Any
            other module (or a TinyViT in training mode, whose BatchNorm is not per pixel)
            runs its class's own ``forward``.
        pixels: (B, 3, 1024, 1024) float32, normalized as ``Sam.preprocess`` returns them;
            channels_last or contiguous (the result's layout follows the encoder's own).
        strips: number of horizontal strips of the 128x128 map ``layers[0]`` returns, cut
            at whole rows of it (8 pixel rows); 1 calls the encoder as is. More strips than
            rows is treated as one strip per row.

    Returns:
        The image embedding, (B, 256, 64, 64) float32, equal to ``image_encoder(pixels)`` up
        to float rounding (measured: identical in channels_last, max abs difference 2.4e-6
        in contiguous format, on outputs of scale ~3.4).

    Raises:
        ValueError: ``strips`` < 1.

    Each strip's window is its output rows traced back through every convolution
    (:func:`input_rows`: 15 pixel rows above, 8 below for this architecture), its top rounded
    down to a multiple of the total stride (8) so that each strided convolution samples the
    same rows as on the whole image, and cropped at the image's top and bottom, where the
    zero padding is the original's. Peak memory and time per strip count: module docstring.
    """
    if strips < 1:
        raise ValueError(f"strips must be at least 1, got {strips}")
    convs = _stem_convs(image_encoder)
    if convs is None or strips == 1 or pixels.ndim != 4:
        return type(image_encoder).forward(image_encoder, pixels)
    x = _stem_in_strips(image_encoder, pixels, strips, convs)
    # The rest of TinyViT.forward_features, as it is written there.
    for layer in image_encoder.layers[1:]:
        x = layer(x)
    batch, _, channels = x.shape
    x = x.view(batch, 64, 64, channels).permute(0, 3, 1, 2)
    return image_encoder.neck(x)


def strips_forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``TinyViT.forward`` as :func:`encode_image` computes it, with ``DEFAULT_STRIPS``
    strips; :func:`install` binds it to an encoder."""
    return encode_image(self, x)


def install(model: nn.Module) -> int:
    """Use :func:`strips_forward` as the ``forward`` of every TinyViT in ``model`` (MobileSAM's
    ``image_encoder``; on the instances, the class is left alone).

    Returns:
        How many modules now use it (1 for a MobileSAM vit_t); 0 (logged) when the installed
        mobile_sam's ``TinyViT.forward`` has another signature, in which case it is kept.
    """
    return install_forward(model, "TinyViT", strips_forward, ("self", "x"))


def input_rows(convs: list[nn.Conv2d], first: int, stop: int) -> tuple[int, int]:
    """Input rows [first, stop) that output rows [first, stop) of ``convs`` depend on.

    Args:
        convs: 2-D convolutions applied one after the other (pointwise steps between them
            do not widen anything); only their kernel height, stride and padding are used.
        first, stop: output rows of the last convolution, stop exclusive.

    Returns:
        (first, stop) in rows of the first convolution's input; first may be negative and
        stop beyond the input: rows there are zero padding. A k-row kernel with stride s and
        padding p reads rows [o*s - p, o*s - p + k) for output row o. For TinyViT's
        ``patch_embed`` + ``layers[0]`` (3x3 stride 2, 3x3 stride 2, two 3x3 stride 1, 3x3
        stride 2; the rest 1x1): rows [a, b) of the 128-row map need pixel rows
        [8a - 15, 8b + 8).
    """
    for conv in reversed(convs):
        kernel, stride, pad = conv.kernel_size[0], conv.stride[0], conv.padding[0]
        first, stop = first * stride - pad, (stop - 1) * stride - pad + kernel
    return first, stop


def _stem_convs(encoder: nn.Module) -> list[nn.Conv2d] | None:
    """The convolutions of ``patch_embed`` and ``layers[0]`` in the order they run, or None
    when ``encoder`` is not an eval-mode MobileSAM TinyViT with the layout this module
    relies on (then the caller falls back to the class's own ``forward``)."""
    # Not imported here: importing mobile_sam is the loader's work; a TinyViT's module is
    # loaded whenever there is a TinyViT to look at.
    tiny_vit = sys.modules.get(_TINY_VIT_MODULE)
    if tiny_vit is None or type(encoder) is not tiny_vit.TinyViT or encoder.training:
        return None
    if not isinstance(encoder.layers[0], tiny_vit.ConvLayer):
        return None
    stem = [*encoder.patch_embed.modules(), *encoder.layers[0].modules()]
    # Per-pixel modules (in eval mode) and the containers of tiny_vit_sam.py only: anything
    # else might mix rows.
    known = (
        nn.Conv2d, nn.BatchNorm2d, nn.GELU, nn.Identity, tiny_vit.DropPath, nn.Sequential,
        nn.ModuleList, tiny_vit.PatchEmbed, tiny_vit.Conv2d_BN, tiny_vit.MBConv,
        tiny_vit.PatchMerging, tiny_vit.ConvLayer,
    )  # fmt: skip
    if any(type(m) not in known for m in stem):
        return None
    # Registration order is run order in tiny_vit_sam.py (conv1, conv2, conv3 in each block).
    convs = [m for m in stem if isinstance(m, nn.Conv2d)]
    if any(c.dilation != (1, 1) or c.padding_mode != "zeros" for c in convs):
        return None
    return convs


def _stem_in_strips(
    encoder: nn.Module, pixels: torch.Tensor, strips: int, convs: list[nn.Conv2d]
) -> torch.Tensor:
    """``encoder.layers[0](encoder.patch_embed(pixels))``, (B, H/8 * W/8, C), strip by strip."""
    height, width = pixels.shape[-2:]
    out_height, out_width = height, width
    stride = 1
    for conv in convs:
        kernel, step, pad = conv.kernel_size, conv.stride, conv.padding
        out_height = (out_height + 2 * pad[0] - kernel[0]) // step[0] + 1
        out_width = (out_width + 2 * pad[1] - kernel[1]) // step[1] + 1
        stride *= step[0]
    strips = min(strips, out_height)
    bounds = [round(i * out_height / strips) for i in range(strips + 1)]
    out = None
    for first, stop in zip(bounds, bounds[1:], strict=False):
        top, bottom = input_rows(convs, first, stop)
        top = max(0, top // stride * stride)  # aligned: strided convs sample the same rows
        bottom = min(height, bottom)
        y = encoder.layers[0](encoder.patch_embed(pixels[:, :, top:bottom]))
        rows = y.shape[1] // out_width
        y = y.transpose(1, 2).unflatten(2, (rows, out_width))  # (B, C, rows, W/8), a view
        if out is None:  # PatchMerging returns (B, C, H, W).flatten(2).transpose(1, 2)
            channels_last = y.is_contiguous(memory_format=torch.channels_last)
            out = torch.empty(
                (y.shape[0], y.shape[1], out_height, out_width),
                dtype=y.dtype,
                device=y.device,
                memory_format=torch.channels_last if channels_last else torch.contiguous_format,
            )
        skip = first - top // stride
        out[:, :, first:stop] = y[:, :, skip : skip + stop - first]
        del y
    return out.flatten(2).transpose(1, 2)
