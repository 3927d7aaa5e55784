"""MobileSAM's prompt encoder and mask decoder as ONNX files, so a page can decode taps on the
photo's image embedding without a round trip to the worker (as SAM's own web demo does).

Two graphs, traced with PyTorch's TorchScript-based ONNX exporter, opset 17, from
:mod:`models.segment.tap_decoder`: together the function of ``mobile_sam.utils.onnx.SamOnnxModel``
(``return_single_mask=True``, no mask prompt) in an order with well under half its multiply-adds
per tap, returning the low-resolution logits instead of logits upsampled in the graph (the page
upsamples only the pixels it draws).

The projection graph (:class:`~models.segment.tap_decoder.ImageProjections`) runs once per
photo: input ``image_embeddings`` (1, 256, 64, 64) float32, the image encoder's output; outputs
``image_keys``, ``image_values``, ``image_queries`` (8, 4096, 16) float32.

The decoder graph (:class:`~models.segment.tap_decoder.TapDecoder`) runs per tap. Its inputs,
as :func:`decoder_inputs` builds them and ``static/js/decoder.js`` sends them:

- ``image_embeddings`` and the projection graph's three outputs for it;
- ``point_coords``: (1, N, 2) float32, (x, y) in encoder-input pixels (the photo resized to
  1024 on its long side, :func:`models.segment.segmenter.work_size`), one padding point
  (0, 0) last, as SAM's predictor adds when there is no box;
- ``point_labels``: (1, N) float32: 1 on the object, 0 background, -1 the padding point;
- ``input_size``: (2,) float32, (h, w) of the encoder input.

Outputs: ``low_res_masks`` (1, 1, 4r, 4c) float32, the top-left 4r x 4c of SAM's 256x256
low-res logits (which cover the padded 1024x1024 encoder input) that the (h, w) mask reads
(:func:`models.segment.tap_decoder.covering_tokens`), and ``iou_predictions`` (1, 1). The mask
at the encoder-input size (h, w) is SAM's ``postprocess_masks`` first step: bilinear
(align_corners=False) to 1024x1024, the top-left (h, w) kept, a pixel in the mask when > 0
(``Sam.mask_threshold``); :func:`work_mask` does it here, ``LogitMask`` in decoder.js in the
page. With one tap (two points with the padding one) the best of SAM's three candidate masks by
predicted IoU is returned, with several taps its single-mask output: the selection
``SamOnnxModel.select_masks`` makes, the same as :meth:`MobileSamSegmenter.segment_points` for
several taps.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models.runtime.weights import sha256_file

OPSET = 17
#: The graphs' layout (files, inputs, outputs, meaning), kept in the published manifest: a
#: decoder published with another layout is exported again, and decoder.js runs only this one.
#: 1: SamOnnxModel with masks upsampled in the graph; 2: TapDecoder, low-res logits;
#: 3: ImageProjections once per photo + TapDecoder on them.
GRAPH_VERSION = 3
PROJECTION_INPUTS = ("image_embeddings",)
PROJECTION_OUTPUTS = ("image_keys", "image_values", "image_queries")
INPUT_NAMES = ("image_embeddings", *PROJECTION_OUTPUTS, "point_coords", "point_labels",
               "input_size")  # fmt: skip
OUTPUT_NAMES = ("low_res_masks", "iou_predictions")
EMBEDDING_SHAPE = (1, 256, 64, 64)


def export_prompt_decoder(model: Any, path: Path, projections_path: Path) -> tuple[str, str]:
    """Write MobileSAM's prompt encoder + mask decoder (of ``model``, a built
    ``mobile_sam.modeling.Sam``) as two ONNX files: :class:`TapDecoder` to ``path`` (float32
    weights, ~16 MB for vit_t) and :class:`ImageProjections` to ``projections_path`` (~0.4 MB).

    Each file is written beside its path and renamed into place, so a reader never sees half a
    file. Takes ~2 s on 2 CPU cores.

    Returns:
        The files' SHA-256s, hex: (decoder, projections).

    Raises:
        ImportError: the ``onnx`` package (the exporter needs it) is not installed.
        OSError: a directory is not writable.
    """
    import torch

    from models.segment.tap_decoder import ImageProjections, TapDecoder

    embeddings = torch.zeros(EMBEDDING_SHAPE, dtype=torch.float32)
    projections = ImageProjections(model).eval()
    with torch.no_grad():
        projected = projections(embeddings)
    args = (embeddings, *projected, torch.tensor([[[512.0, 384.0], [0.0, 0.0]]]),
            torch.tensor([[1.0, -1.0]]), torch.tensor([768.0, 1024.0]))  # fmt: skip
    points = {"point_coords": {1: "num_points"}, "point_labels": {1: "num_points"}}
    decoder_sha = _export(TapDecoder(model).eval(), args, Path(path), INPUT_NAMES,
                          OUTPUT_NAMES, points)  # fmt: skip
    projections_sha = _export(projections, (embeddings,), Path(projections_path),
                              PROJECTION_INPUTS, PROJECTION_OUTPUTS, {})  # fmt: skip
    return decoder_sha, projections_sha


def _export(module: Any, args: tuple, path: Path, inputs: tuple[str, ...],
            outputs: tuple[str, ...], dynamic_axes: dict) -> str:  # fmt: skip
    """Trace ``module`` on ``args`` to ONNX at ``path`` (through a temporary file); its SHA-256."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".part")
    os.close(handle)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer and deprecation notes, not errors
            torch.onnx.export(
                module, args, temp, dynamo=False, opset_version=OPSET,
                input_names=list(inputs), output_names=list(outputs),
                dynamic_axes=dynamic_axes, do_constant_folding=True,
            )  # fmt: skip
        digest = sha256_file(Path(temp))
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
    return digest


def embedding_file(features: Any) -> bytes:
    """A photo's image embedding as the page fetches it: (1, 256, 64, 64) float16,
    little-endian, C order, no header (2 MiB). float16 keeps ~3 significant digits: the
    embedding's values lie within +-10, where its step is at most 2**-7, far below what moves
    a mask logit across 0 (the parity test holds masks to IoU >= 0.98).

    Args:
        features: (1, 256, 64, 64) float tensor or array (``ImageEmbedding.features``).

    Raises:
        ValueError: another shape.
    """
    array = features.detach().float().cpu().numpy() if hasattr(features, "detach") else features
    array = np.asarray(array)
    if array.shape != EMBEDDING_SHAPE:
        raise ValueError(f"an image embedding is {EMBEDDING_SHAPE}, got {array.shape}")
    return np.ascontiguousarray(array, dtype="<f2").tobytes()


def read_embedding_file(data: bytes) -> np.ndarray:
    """The (1, 256, 64, 64) float32 array of :func:`embedding_file`'s bytes.

    Raises:
        ValueError: not 2 MiB (256 * 64 * 64 float16 values).
    """
    count = int(np.prod(EMBEDDING_SHAPE))
    if len(data) != 2 * count:
        raise ValueError(f"an embedding file is {2 * count} bytes, got {len(data)}")
    return np.frombuffer(data, dtype="<f2").astype(np.float32).reshape(EMBEDDING_SHAPE)


def decoder_inputs(
    embeddings: np.ndarray,
    projections: Sequence[np.ndarray],
    photo_size: tuple[int, int],
    points: np.ndarray,
    labels: np.ndarray,
) -> dict[str, np.ndarray]:
    """The ONNX decoder's inputs for taps on a photo, as ``static/js/decoder.js`` builds them.

    Args:
        embeddings: (1, 256, 64, 64) float32 image embedding.
        projections: the projection graph's three (8, 4096, 16) float32 outputs for it.
        photo_size: (h, w) of the photo in pixels.
        points: (N, 2) float, (x, y) photo pixels, N >= 1.
        labels: (N,) int, 1 on the object, 0 background.

    Returns:
        name -> array, see the module docstring.

    Raises:
        ValueError: no point, or points and labels of different lengths.
    """
    from models.segment.segmenter import work_size

    points = np.asarray(points, dtype=np.float32).reshape(-1, 2)
    labels = np.asarray(labels, dtype=np.float32).reshape(-1)
    if len(points) == 0 or len(points) != len(labels):
        raise ValueError(f"need N>=1 points and N labels, got {len(points)}, {len(labels)}")
    height, width = photo_size
    in_h, in_w = work_size(photo_size)
    scale = np.array([in_w / width, in_h / height], dtype=np.float32)
    coords = np.concatenate([points * scale, np.zeros((1, 2), np.float32)])[None]
    return {
        "image_embeddings": np.asarray(embeddings, dtype=np.float32),
        **{name: np.asarray(array, dtype=np.float32)
           for name, array in zip(PROJECTION_OUTPUTS, projections, strict=True)},
        "point_coords": coords.astype(np.float32),
        "point_labels": np.concatenate([labels, [-1.0]]).astype(np.float32)[None],
        "input_size": np.array([in_h, in_w], dtype=np.float32),
    }


def work_mask(low_res: np.ndarray, input_size: tuple[int, int]) -> np.ndarray:
    """The (h, w) bool mask at the encoder-input size from the decoder's low-res logits:
    bilinear (align_corners=False) to the padded 1024x1024 input, the top-left (h, w), > 0.
    The computation of :meth:`MobileSamSegmenter._work_logits` and ``LogitMask`` in decoder.js.

    Args:
        low_res: (1, 1, r, c) float32 logits (``low_res_masks``): the top-left of the 256x256
            logits, the rest (never read for the (h, w) mask) padded with zeros here.
        input_size: (h, w), :func:`models.segment.segmenter.work_size` of the photo.
    """
    import torch
    import torch.nn.functional as F

    from models.segment.segmenter import ENCODER_SIZE, LOW_RES

    low_res = torch.as_tensor(low_res, dtype=torch.float32)
    full = low_res.new_zeros((1, 1, LOW_RES, LOW_RES))
    full[..., : low_res.shape[-2], : low_res.shape[-1]] = low_res
    logits = F.interpolate(full, (ENCODER_SIZE, ENCODER_SIZE), mode="bilinear",
                           align_corners=False)  # fmt: skip
    in_h, in_w = input_size
    return (logits[0, 0, :in_h, :in_w] > 0).numpy()
