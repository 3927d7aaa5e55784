"""MobileSAM segmenter: image embeddings (LRU-cached per key), box and point prompts, and
everything mode (automatic mask generation), all returning masks at photo size.

MobileSAM (Zhang et al. 2023, arXiv:2306.14289) is SAM (Kirillov et al. 2023,
arXiv:2304.02643) with a TinyViT image encoder ("vit_t"); the prompt encoder and mask
decoder are SAM's. The encoder always sees the photo resized to 1024 px on its long side
(SAM's ``ResizeLongestSide``), so the photo is downscaled once to that "work image"; low
resolution mask logits (256x256) are upscaled straight to photo size.
"""

from __future__ import annotations

import logging
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.ops import batched_nms

from models.errors import ModelError
from models.patches import apply_to_mobile_sam
from models.runtime.precision import autocast, autocast_dtype
from models.segment.mask import Mask, tight

log = logging.getLogger(__name__)

ENCODER_SIZE = 1024  # SAM/MobileSAM image encoder input, long side in pixels
LOW_RES = 256  # side of the mask decoder's low-resolution logits (covering the padded input)
STABILITY_OFFSET = 1.0  # SamAutomaticMaskGenerator's stability_score_offset default
BOX_BATCH = 16  # box prompts per decoder call (memory: ~25 MB of activations per prompt)
#: A prompt's best answer this far (predicted IoU) under ``pred_iou_thresh`` is a near miss.
NEAR_MISS = 0.15
DECODE_CHUNK = 4  # prompts per pass of the decoder's transformer and upscaling (~20 MB each)


def import_mobile_sam() -> ModuleType:
    """Import ``mobile_sam`` without its import-time noise.

    mobilesam-mirror re-registers timm's TinyViT models ("Overwriting tiny_vit_* in registry",
    UserWarning) and imports deprecated timm paths (FutureWarning); both are harmless.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Overwriting tiny_vit", category=UserWarning)
        warnings.filterwarnings("ignore", message="Importing from timm", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="timm")
        import mobile_sam
    return mobile_sam


_mobile_sam = import_mobile_sam()
_amg = _mobile_sam.utils.amg


@dataclass(frozen=True)
class EverythingSettings:
    """Settings of everything mode, chosen for a few seconds on 2 CPU cores.

    Prompts come in rounds, a coarse grid and then points of finer grids where nothing was
    found or asked yet: SAM's default grid is 32x32 (1,024 prompts, 79 s on 2 cores) and the
    prompt count is what everything mode costs (``bench.speed``). Measured on the recall
    oracle (``bench/recall.py``: synthetic scenes of 30-60 objects and a stand-in decoder;
    ``python -m bench.recall``), these settings find as many of the objects of at least 1%
    of the image as ``SamAutomaticMaskGenerator``'s defaults, and 97-98% as many of those of
    at least 0.25%, with at most 120 prompts instead of 1,024 (the README gives the
    figures).

    Attributes:
        points_per_side: the coarse grid is points_per_side**2 single-point prompts (8: 64).
            Each gives three candidates (whole, part, sub-part), so the parts of an object
            under a grid point are found with it.
        fill_rounds: then, per round, (side, most): the points of a side x side grid that no
            kept mask covers and no earlier prompt's best answer covers (kept or not: a
            point on the floor answers "the floor", and no prompt need go there again), at
            most ``most`` of them spread evenly. Each round goes only where the rounds
            before found nothing, at a finer spacing.
        max_retries: last, at most this many prompts again from the inside of near misses
            (best answers just under the IoU threshold, ``NEAR_MISS``: mostly objects first
            asked about from an edge, where SAM is unsure).
        points_per_batch: prompts per decoder call; 16 uses far less memory than SAM's 64
            and is as fast on CPU (measured).
        pred_iou_thresh, stability_score_thresh: SAM's own defaults, 0.88 / 0.95 (the
            stability score taken on the work-resolution logits, :func:`work_stability`,
            as SAM takes it).
        box_nms_thresh: SAM's default 0.7 (box IoU above which duplicates are dropped).
        min_area_fraction: masks smaller than this fraction of the photo are dropped (too
            small to see or to hold a label; product choice).
        max_masks: at most this many masks, largest first: a bound on the overlay's
            labels (product choice), far above what the rounds keep on a busy scene, so no
            valid medium mask is evicted by it.
    """

    points_per_side: int = 8
    fill_rounds: tuple[tuple[int, int], ...] = ((16, 24), (32, 16))
    max_retries: int = 16
    points_per_batch: int = 16
    pred_iou_thresh: float = 0.88
    stability_score_thresh: float = 0.95
    box_nms_thresh: float = 0.7
    min_area_fraction: float = 0.001
    max_masks: int = 100


@dataclass
class ImageEmbedding:
    """SAM image embedding of one photo.

    Attributes:
        features: (1, 256, 64, 64) float32 tensor from the image encoder.
        input_size: (h, w) of the resized image fed to the encoder (long side 1024).
        photo_size: (h, w) of the photo, in pixels.
    """

    features: torch.Tensor
    input_size: tuple[int, int]
    photo_size: tuple[int, int]


@dataclass
class SegmentedMask:
    """One mask of everything mode.

    Attributes:
        mask: the (H, W) photo-size mask, kept as the crop of its tight box.
        box: (x0, y0, x1, y1) tight box of ``mask`` in photo pixels (x1, y1 exclusive).
        score: SAM's predicted mask IoU, clipped to 0-1.
        area: True pixels in ``mask``.
    """

    mask: Mask
    box: tuple[float, float, float, float]
    score: float
    area: int


def work_size(photo_size: tuple[int, int], long_side: int = ENCODER_SIZE) -> tuple[int, int]:
    """(h, w) of a photo of ``photo_size`` (h, w) resized to ``long_side`` on its long side.

    Same rounding as SAM's ``ResizeLongestSide.get_preprocess_shape`` (int(x * scale + 0.5)).
    """
    height, width = photo_size
    scale = long_side / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


class MobileSamSegmenter:
    """MobileSAM (vit_t) on one device. Not thread-safe: callers serialise (the service does).

    Image embeddings are cached per caller-given ``key`` in an LRU of ``cache_size`` entries
    (~4 MB each), so several prompts on one photo pay for the encoder (~1 s) once.
    """

    def __init__(
        self,
        model: Any,
        *,
        device: str = "cpu",
        cache_size: int = 4,
        everything: EverythingSettings | None = None,
        precision: str = "auto",
    ) -> None:
        """Wrap a built ``mobile_sam.modeling.Sam`` (moved to ``device``, eval mode).

        ``precision`` ("auto", "float32", "bfloat16";
        :func:`models.runtime.precision.autocast_dtype`) applies to the mask decoder's
        transformer only (:meth:`_transformer`): the image encoder stays float32
        (in bfloat16 it was 2x faster, but box masks on the same
        weights matched float32's with IoU 0.965-0.98, below the 0.98 parity rule for masks).

        Raises:
            ValueError: unknown precision.
        """
        self.model = model.to(device).eval()
        self.decoder_autocast = autocast_dtype(precision, device)
        self.device = torch.device(device)
        self.cache_size = cache_size
        self.everything_settings = everything or EverythingSettings()
        self._cache: OrderedDict[str, ImageEmbedding] = OrderedDict()

    @classmethod
    def from_checkpoint(
        cls, path: Path, *, device: str = "cpu", **kwargs: Any
    ) -> MobileSamSegmenter:
        """Build vit_t through ``mobile_sam.sam_model_registry``, load a state_dict ``.pt`` and
        apply :func:`models.patches.apply_to_mobile_sam`.

        Raises:
            ModelError: the file is not a loadable MobileSAM vit_t state_dict.
        """
        mobile_sam = import_mobile_sam()
        model = mobile_sam.sam_model_registry["vit_t"]()
        try:
            state = torch.load(Path(path), map_location=device, weights_only=True)
            model.load_state_dict(state)
        except Exception as exc:  # unpickling, truncated file, wrong keys or shapes
            raise ModelError(
                f"The MobileSAM checkpoint at {path} could not be loaded "
                f"({type(exc).__name__}: {str(exc)[:200]}). Run `flask models download` to "
                "replace it."
            ) from exc
        model.image_encoder.to(memory_format=torch.channels_last)  # see embed()
        # The encoder's first stages strip by strip: same features, ~220 MiB less peak memory
        # (models.patches.strips).
        patched = apply_to_mobile_sam(model)
        log.info("MobileSAM vit_t loaded from %s on %s (patched modules: %s)",
                 path, device, patched)  # fmt: skip
        return cls(model, device=device, **kwargs)

    # ------------------------------------------------------------------ embeddings

    def embed(self, image: Image.Image, key: str | None = None) -> ImageEmbedding:
        """Image embedding of an RGB photo, from the LRU cache when ``key`` was seen with a
        photo of the same size.

        Args:
            image: RGB PIL image, W x H pixels.
            key: cache key (e.g. "photo-12-9f86d081884c7d65"); None computes without caching.

        Returns:
            :class:`ImageEmbedding` (features (1, 256, 64, 64) float32).
        """
        photo_size = (image.height, image.width)
        if key is not None:
            cached = self._cache.get(key)
            if cached is not None and cached.photo_size == photo_size:
                self._cache.move_to_end(key)
                return cached
        input_h, input_w = work_size(photo_size)
        rgb = image if image.mode == "RGB" else image.convert("RGB")  # convert() copies
        work = rgb.resize((input_w, input_h), Image.Resampling.BILINEAR, reducing_gap=2.0)
        pixels = torch.from_numpy(np.asarray(work).copy()).to(self.device)
        pixels = pixels.permute(2, 0, 1).contiguous()[None].float()  # (1, 3, h, w) 0-255
        # channels_last: the encoder's convolutions then run on oneDNN instead of PyTorch's
        # slow NCHW path for some of their shapes (one 1024 px image on one thread: 1.17 s ->
        # 1.00 s; same features up to 1e-5).
        pixels = self.model.preprocess(pixels).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            features = self.model.image_encoder(pixels).contiguous()
        embedding = ImageEmbedding(features, (input_h, input_w), photo_size)
        if key is not None and self.cache_size > 0:
            self._cache[key] = embedding
            self._cache.move_to_end(key)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return embedding

    def _embedding_for(
        self, image: Image.Image, key: str | None, embedding: ImageEmbedding | None
    ) -> ImageEmbedding:
        """The given embedding if it is of this photo's size, else :meth:`embed`."""
        if embedding is not None and embedding.photo_size == (image.height, image.width):
            return embedding
        return self.embed(image, key)

    def cached_keys(self) -> set[str]:
        """The keys whose image embedding is cached."""
        return set(self._cache)

    def forget(self, key: str) -> None:
        """Drop ``key``'s cached embedding, if any."""
        self._cache.pop(key, None)

    # ------------------------------------------------------------------ prompts

    def _decode(
        self,
        embedding: ImageEmbedding,
        *,
        points: tuple[torch.Tensor, torch.Tensor] | None = None,
        boxes: torch.Tensor | None = None,
        multimask: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run SAM's prompt encoder + mask decoder on B prompts; prompts in encoder-input px.

        The same computation as ``MaskDecoder.forward`` (mobile_sam 1.0.0), except that the
        image embedding is not copied once per prompt: the two-way transformer's first layer
        projects the image tokens (keys and values of token-to-image attention, queries of
        image-to-token attention) identically for every prompt, so they are computed once
        and broadcast. Exact up to float rounding (tests/models/segment/test_segmenter.py).

        Returns:
            low-res mask logits (B, C, 256, 256) float32 and predicted IoUs (B, C), C = 3
            with ``multimask`` else 1.
        """
        model = self.model
        decoder = model.mask_decoder
        sparse, dense = model.prompt_encoder(points=points, boxes=boxes, masks=None)
        count = sparse.shape[0]
        output_tokens = torch.cat([decoder.iou_token.weight, decoder.mask_tokens.weight], dim=0)
        tokens = torch.cat((output_tokens.unsqueeze(0).expand(count, -1, -1), sparse), dim=1)
        # Without a mask prompt the dense embedding is one learnt vector, the same per prompt.
        src = embedding.features + dense[:1]
        _, channels, height, width = src.shape
        image_pe = model.prompt_encoder.get_dense_pe()
        # The two-way transformer and the upscaling make ~20 MB of float32 activations per
        # prompt (image-sized keys (n, 4096, 256), upscaled (n, 32, 256, 256)): they run
        # DECODE_CHUNK prompts at a time. Each prompt's computation is the same (bit for bit;
        # tests/models/segment/test_segmenter.py) and the peak memory a fraction of the whole
        # batch's.
        token_states, image_states = [], []
        for first, last in _chunks(count, DECODE_CHUNK):
            part = tokens[first:last]
            hs_part, src_part = self._transformer(src, image_pe, part)
            token_states.append(hs_part)
            image_states.append(src_part.expand(len(hs_part), -1, -1))
        # The heads run on the whole batch, as in SAM (a one-row matmul may round differently).
        hs = torch.cat(token_states)
        hyper_in = torch.stack(
            [mlp(hs[:, 1 + i, :]) for i, mlp in enumerate(decoder.output_hypernetworks_mlps)],
            dim=1,
        )
        masks = None
        for (first, _), src_part in zip(_chunks(count, DECODE_CHUNK), image_states, strict=True):
            upscaled = decoder.output_upscaling(
                src_part.transpose(1, 2).reshape(-1, channels, height, width)
            )
            b, c, h, w = upscaled.shape
            part_masks = hyper_in[first : first + b] @ upscaled.view(b, c, h * w)
            if masks is None:
                masks = part_masks.new_empty((count, part_masks.shape[1], h, w))
            masks[first : first + b] = part_masks.view(b, -1, h, w)
            del upscaled, part_masks
        image_states.clear()
        assert masks is not None
        iou_pred = decoder.iou_prediction_head(hs[:, 0, :])
        chosen = slice(1, None) if multimask else slice(0, 1)
        return masks[:, chosen], iou_pred[:, chosen]

    def _transformer(
        self, src: torch.Tensor, image_pe: torch.Tensor, tokens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The mask decoder's two-way transformer, in the decoder precision: under bfloat16
        autocast when ``decoder_autocast`` is set, else float32.

        Args:
            src: image embedding plus dense prompt (1, 256, 64, 64) float32.
            image_pe: positional encoding (1, 256, 64, 64) float32.
            tokens: output and prompt tokens (n, T, 256) float32.

        Returns:
            token states (n, T, 256) and image states (1 or n, 4096, 256), float32.

        The transformer is most of the decoder's time; in bfloat16 it is 1.65x faster on a
        CPU with AVX512-BF16 (12 box masks on a photo: 0.68 -> 0.41 s on one thread) and its
        masks match float32's with IoU >= 0.985 on the same weights
        (tests/models/segment/test_segmenter_precision.py). The upscaling and the mask product stay
        float32: with them in bfloat16 too, box masks fell to IoU 0.975.
        """
        with autocast(self.device.type, self.decoder_autocast):
            hs, keys = self.model.mask_decoder.transformer(src, image_pe, tokens)
        return hs.float(), keys.float()  # no copy when already float32

    def _to_photo(self, low_res: torch.Tensor, embedding: ImageEmbedding) -> list[Mask]:
        """(B, 1, 256, 256) logits -> B photo-size masks: SAM's ``postprocess_masks`` to the
        work image (bilinear to the padded 1024 input, crop), thresholded there, then
        :func:`upscale_mask` to photo size (uint8 bilinear: at 12 megapixels far cheaper than
        upsampling float logits, same edges up to a pixel), each kept as its tight crop."""
        return [
            self._photo_mask(self._work_logits(low_res[i : i + 1])[0, 0], embedding)
            for i in range(len(low_res))
        ]

    def _work_logits(self, low_res: torch.Tensor) -> torch.Tensor:
        """(B, C, 256, 256) low-res logits -> (B, C, 1024, 1024) logits of the padded encoder
        input (SAM's ``postprocess_masks`` first step: bilinear, align_corners=False)."""
        return F.interpolate(
            low_res, (ENCODER_SIZE, ENCODER_SIZE), mode="bilinear", align_corners=False
        )

    def _photo_mask(self, work_logits: torch.Tensor, embedding: ImageEmbedding) -> Mask:
        """(>=h, >=w) work-image logits (top-left aligned) -> the (H, W) photo mask."""
        in_h, in_w = embedding.input_size
        work_mask = (work_logits[:in_h, :in_w] > self.model.mask_threshold).cpu().numpy()
        return upscale_mask(work_mask, embedding.photo_size)

    def _scale(self, embedding: ImageEmbedding) -> np.ndarray:
        """(sx, sy): photo pixels -> encoder-input pixels."""
        (in_h, in_w), (ph, pw) = embedding.input_size, embedding.photo_size
        return np.array([in_w / pw, in_h / ph], dtype=np.float32)

    def segment_boxes(
        self,
        image: Image.Image,
        boxes: np.ndarray,
        *,
        key: str | None = None,
        embedding: ImageEmbedding | None = None,
    ) -> tuple[list[Mask], np.ndarray]:
        """One mask per box prompt.

        Args:
            image: RGB photo, W x H.
            boxes: (N, 4) float, xyxy in photo pixels.
            key: embedding cache key.
            embedding: this photo's embedding from :meth:`embed` (skips the cache lookup).

        Returns:
            N photo-size (H, W) masks (each kept as its tight crop: at 12 megapixels a whole
            bool mask is 12 MB), and predicted IoUs (N,) float32.
            Boxes are decoded in batches of ``BOX_BATCH``: with the image embedding shared
            across prompts (:meth:`_decode`) a batch costs less than its prompts one by one.
        """
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        masks: list[Mask] = []
        scores = np.zeros(len(boxes), dtype=np.float32)
        if len(boxes) == 0:
            return masks, scores
        embedding = self._embedding_for(image, key, embedding)
        scaled = boxes * np.tile(self._scale(embedding), 2)
        with torch.inference_mode():
            for start in range(0, len(scaled), BOX_BATCH):
                batch = torch.as_tensor(scaled[start : start + BOX_BATCH], device=self.device)
                low_res, iou = self._decode(embedding, boxes=batch)
                masks.extend(self._to_photo(low_res, embedding))
                scores[start : start + len(batch)] = iou[:, 0].float().cpu().numpy()
        return masks, scores

    def segment_points(
        self,
        image: Image.Image,
        points: np.ndarray,
        labels: np.ndarray,
        *,
        key: str | None = None,
        embedding: ImageEmbedding | None = None,
    ) -> tuple[Mask, float]:
        """One mask from point prompts (e.g. a tap on the photo).

        Args:
            image: RGB photo, W x H.
            points: (N, 2) float, (x, y) in photo pixels.
            labels: (N,) int, 1 = on the object, 0 = background.
            key: embedding cache key.
            embedding: this photo's embedding from :meth:`embed` (skips the cache lookup).

        Returns:
            (mask, (H, W) at photo size, predicted IoU). For a single point SAM's three
            candidate masks are scored and the best kept (multimask output is recommended for
            ambiguous single-point prompts in SAM's predictor documentation).

        Raises:
            ValueError: shapes do not match or there is no point.
        """
        points = np.asarray(points, dtype=np.float32).reshape(-1, 2)
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        if len(points) == 0 or len(points) != len(labels):
            raise ValueError(f"need N>=1 points and N labels, got {len(points)}, {len(labels)}")
        embedding = self._embedding_for(image, key, embedding)
        coords = torch.as_tensor(points * self._scale(embedding), device=self.device)[None]
        labels_t = torch.as_tensor(labels, dtype=torch.int, device=self.device)[None]
        with torch.inference_mode():
            low_res, iou = self._decode(
                embedding, points=(coords, labels_t), multimask=len(points) == 1
            )
            best = int(torch.argmax(iou[0]))
            mask = self._to_photo(low_res[:, best : best + 1], embedding)[0]
        return mask, float(iou[0, best])

    def segment_point(
        self,
        image: Image.Image,
        point: tuple[float, float],
        *,
        key: str | None = None,
        embedding: ImageEmbedding | None = None,
    ) -> tuple[Mask, float]:
        """The mask of the object under one tapped point.

        SAM's three candidate masks for a single point (multimask output, recommended for
        ambiguous single points in SAM's predictor documentation) are ranked by predicted IoU;
        the best one that covers the point wins (a mask that leaves out the tapped pixel is
        not "the object under the point"), else the best one.

        Args:
            image: RGB photo, W x H.
            point: (x, y) in photo pixels, inside the photo.
            key: embedding cache key (e.g. "photo-12-9f86d081884c7d65"); a cached embedding
                is reused.
            embedding: this photo's embedding from :meth:`embed` (skips the cache lookup).

        Returns:
            (mask, (H, W) at photo size, predicted IoU clipped to 0-1).
        """
        embedding = self._embedding_for(image, key, embedding)
        scaled = np.asarray(point, dtype=np.float32).reshape(1, 2) * self._scale(embedding)
        coords = torch.as_tensor(scaled, device=self.device)[None]
        labels = torch.ones((1, 1), dtype=torch.int, device=self.device)
        with torch.inference_mode():
            low_res, iou = self._decode(embedding, points=(coords, labels), multimask=True)
            logits = self._work_logits(low_res)  # (1, 3, 1024, 1024)
            in_h, in_w = embedding.input_size
            px = min(max(int(scaled[0, 0]), 0), in_w - 1)
            py = min(max(int(scaled[0, 1]), 0), in_h - 1)
            covers = logits[0, :, py, px] > self.model.mask_threshold
            order = torch.argsort(iou[0], descending=True).tolist()
            best = next((c for c in order if bool(covers[c])), order[0])
            mask = self._photo_mask(logits[0, best], embedding)
        return mask, min(max(float(iou[0, best]), 0.0), 1.0)

    # ------------------------------------------------------------------ everything mode

    def everything(
        self,
        image: Image.Image,
        *,
        key: str | None = None,
        embedding: ImageEmbedding | None = None,
        boxes: np.ndarray | None = None,
    ) -> list[SegmentedMask]:
        """Automatic mask generation: SAM's ``SamAutomaticMaskGenerator`` (single crop) over a
        coarse grid plus fine-grid points where it found nothing (:class:`EverythingSettings`),
        scored at low resolution. With ``boxes`` (a detector's), those are asked first as box
        prompts, as MobileSAMv2's object-aware prompts (Zhang et al. 2023, arXiv:2312.09579)
        replace the grid, and the coarse grid keeps only its points that no box's answer
        covered; the fine rounds follow as without boxes.

        Each point is one prompt with three candidate masks (multimask output). Every
        filter of the generator runs on the decoder's 256x256 low-resolution logits, before any
        upsampling: predicted IoU, stability score (IoU of the masks thresholded at +-1.0, on
        the same logits), box NMS and the minimum area. Only the masks kept (at most
        ``max_masks``) are upsampled, straight to photo size. The generator instead upsamples
        every candidate to the 1024-px work image first, which costs more than the decoder
        for a well-trained model (most candidates pass the IoU filter) and gives the same
        masks up to the 4-px grid of the low-res boxes used by NMS.

        Args:
            image: RGB photo, W x H.
            key: embedding cache key.
            embedding: this photo's embedding from :meth:`embed` (skips the cache lookup).
            boxes: (N, 4) float xyxy photo pixels, object boxes to ask first; None or empty:
                the coarse grid.

        Returns:
            Masks at photo size, largest area first, at most ``max_masks``, none smaller than
            ``min_area_fraction`` of the photo. Overlaps are possible (a part and its whole).
        """
        settings = self.everything_settings
        embedding = self._embedding_for(image, key, embedding)
        in_h, in_w = embedding.input_size
        # The low-res logits cover the padded 1024x1024 input; keep the photo's part.
        low_h, low_w = -(-in_h * LOW_RES // ENCODER_SIZE), -(-in_w * LOW_RES // ENCODER_SIZE)
        scale = np.array([in_w, in_h], dtype=np.float32)
        points = _amg.build_point_grid(settings.points_per_side) * scale
        prompt_boxes = np.zeros((0, 4), np.float32) if boxes is None else np.asarray(
            boxes, dtype=np.float32).reshape(-1, 4) * np.tile(self._scale(embedding), 2)
        with torch.inference_mode():
            if len(prompt_boxes):
                logits, iou, boxes, explored, again = self._grid_masks(
                    embedding, prompt_boxes, (low_h, low_w), box_prompts=True)
                side = settings.points_per_side
                points = self._uncovered_points(logits, explored, side, side * side,
                                                (low_h, low_w)) * scale  # fmt: skip
                more = self._grid_masks(embedding, points, (low_h, low_w))
                logits, iou, boxes = (
                    torch.cat(pair) for pair in zip((logits, iou, boxes), more[:3], strict=True)
                )
                explored = explored | more[3]
                again = np.concatenate([again, more[4]])
            else:
                logits, iou, boxes, explored, again = self._grid_masks(
                    embedding, points, (low_h, low_w))
            for side, most in settings.fill_rounds:
                fill = self._uncovered_points(logits, explored, side, most, (low_h, low_w))
                if not len(fill):
                    continue
                more = self._grid_masks(embedding, fill * scale, (low_h, low_w))
                logits, iou, boxes = (
                    torch.cat(pair) for pair in zip((logits, iou, boxes), more[:3], strict=True)
                )
                explored = explored | more[3]
                again = np.concatenate([again, more[4]])
            if len(again) and settings.max_retries > 0:
                again = np.unique(again.round(), axis=0)[: settings.max_retries]
                more = self._grid_masks(embedding, again, (low_h, low_w))
                logits, iou, boxes = (
                    torch.cat(pair) for pair in zip((logits, iou, boxes), more[:3], strict=True)
                )
            if len(logits) == 0:
                return []
            order = batched_nms(
                boxes, iou, torch.zeros_like(iou, dtype=torch.int64), settings.box_nms_thresh
            )
            logits = logits[order]
            area = (logits > self.model.mask_threshold).flatten(1).sum(1)
            by_area = torch.argsort(area, descending=True)[: settings.max_masks]
            results = []
            for index in by_area.tolist():
                mask = self._upscale_logits(logits[index], embedding)
                mask_area = mask.area
                if mask_area == 0:
                    continue
                # SAM's IoU head is an unbounded regression; clip to the 0-1 a score promises.
                score = min(max(float(iou[order[index]]), 0.0), 1.0)
                results.append(SegmentedMask(mask, mask.box, score, mask_area))
        results.sort(key=lambda m: m.area, reverse=True)
        return results

    def _grid_masks(
        self, embedding: ImageEmbedding, points: np.ndarray, low_size: tuple[int, int],
        *, box_prompts: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, np.ndarray]:
        """Candidate masks of single-point prompts, filtered as SamAutomaticMaskGenerator does
        (predicted IoU, stability score, plus the minimum area), all at low resolution.

        Args:
            embedding: the photo's embedding.
            points: (N, 2) float32, (x, y) in encoder-input pixels; with ``box_prompts``,
                (N, 4) boxes xyxy in encoder-input pixels instead, one candidate each (a box
                says which object: SAM's single-mask output).
            low_size: (h, w) of the photo's part of the 256x256 low-res grid.

        Returns:
            logits (M, h, w) float32, predicted IoUs (M,), boxes (M, 4) xyxy low-res pixels
            (three candidates per point before filtering, multimask output), and the
            explored area (h, w) bool: the union of every prompt's best-scored candidate,
            kept or not (a point on the floor answers "the floor", even if SAM's filters
            drop it: no later prompt need go there), except near misses; and (K, 2) float32
            points (x, y) in encoder-input pixels, one inside each near miss (a best answer
            whose predicted IoU is within ``NEAR_MISS`` under the threshold: typically an
            object asked about from its edge), to ask again.
        """
        settings = self.everything_settings
        low_h, low_w = low_size
        kept_logits, kept_iou, kept_boxes = [], [], []
        explored: torch.Tensor | None = None
        retry: list[tuple[float, float] | None] = []
        for start in range(0, len(points), settings.points_per_batch):
            batch = torch.as_tensor(
                points[start : start + settings.points_per_batch], dtype=torch.float32
            ).to(self.device)
            if box_prompts:
                low_res, iou = self._decode(embedding, boxes=batch)
            else:
                labels = torch.ones((len(batch), 1), dtype=torch.int, device=self.device)
                low_res, iou = self._decode(
                    embedding, points=(batch[:, None, :], labels), multimask=True
                )
            best_iou, best = iou.max(dim=1)
            answered = low_res[torch.arange(len(best)), best, :low_h, :low_w]
            # A best answer just under the IoU threshold is an object asked about from an
            # ambiguous spot (an edge): not explored, and asked again from its inside.
            near = (best_iou < settings.pred_iou_thresh) & (
                best_iou >= settings.pred_iou_thresh - NEAR_MISS)
            sure = answered[~near] > self.model.mask_threshold
            if len(sure):
                explored = sure.any(0) if explored is None else explored | sure.any(0)
            retry += [_inside_point(m) for m in (answered[near] > self.model.mask_threshold)]
            logits = low_res.flatten(0, 1)[:, :low_h, :low_w]
            iou = iou.flatten()
            if settings.pred_iou_thresh > 0.0:  # as upstream: a 0 threshold is "off"
                keep = iou > settings.pred_iou_thresh
                logits, iou = logits[keep], iou[keep]
            if settings.stability_score_thresh > 0.0:
                stability = work_stability(logits, self.model.mask_threshold)
                keep = stability >= settings.stability_score_thresh
                logits, iou = logits[keep], iou[keep]
            binary = logits > self.model.mask_threshold
            keep = binary.flatten(1).sum(1) >= settings.min_area_fraction * low_h * low_w
            kept_logits.append(logits[keep])
            kept_iou.append(iou[keep])
            kept_boxes.append(_amg.batched_mask_to_box(binary[keep]).float())
        if explored is None:
            explored = torch.zeros((low_h, low_w), dtype=torch.bool, device=self.device)
        # (x, y) in encoder-input pixels: the low-res grid covers the padded 1024 input.
        again = np.array([p for p in retry if p is not None], dtype=np.float32).reshape(-1, 2)
        again = (again + 0.5) * (ENCODER_SIZE / LOW_RES)
        if not kept_logits:
            empty = torch.zeros((0, low_h, low_w), device=self.device)
            return (empty, torch.zeros(0, device=self.device), torch.zeros((0, 4)), explored,
                    again)
        return (torch.cat(kept_logits), torch.cat(kept_iou), torch.cat(kept_boxes), explored,
                again)

    def _uncovered_points(
        self, logits: torch.Tensor, explored: torch.Tensor, side: int, most: int,
        low_size: tuple[int, int],
    ) -> np.ndarray:
        """Points of a ``side`` x ``side`` grid that no kept mask covers and no earlier prompt
        answered (``explored``), at most ``most`` of them spread evenly; (K, 2) float in 0-1
        of the photo."""
        if side <= 0 or most <= 0:
            return np.zeros((0, 2), dtype=np.float32)
        low_h, low_w = low_size
        fine = _amg.build_point_grid(side).astype(np.float32)
        covered = explored.clone()
        if len(logits):
            covered |= (logits > self.model.mask_threshold).any(0)
        covered = covered.cpu().numpy()
        cols = np.minimum((fine[:, 0] * low_w).astype(int), low_w - 1)
        rows = np.minimum((fine[:, 1] * low_h).astype(int), low_h - 1)
        fine = fine[~covered[rows, cols]]
        if len(fine) > most:
            fine = fine[np.linspace(0, len(fine) - 1, most).round().astype(int)]
        return fine

    def _upscale_logits(self, logits: torch.Tensor, embedding: ImageEmbedding) -> Mask:
        """(h, w) low-res logits of the photo's part of the 256x256 grid -> (H, W) photo mask
        (as :meth:`_to_photo`, without upsampling the padding)."""
        scale = ENCODER_SIZE / LOW_RES
        size = (round(logits.shape[0] * scale), round(logits.shape[1] * scale))
        work = F.interpolate(logits[None, None], size, mode="bilinear", align_corners=False)
        return self._photo_mask(work[0, 0], embedding)


def _inside_point(mask: torch.Tensor) -> tuple[float, float] | None:
    """The most interior pixel (x, y) of a (h, w) bool mask (the maximum of its distance
    transform, low-res pixels), or None for an empty mask."""
    import cv2

    array = mask.cpu().numpy().astype(np.uint8)
    if not array.any():
        return None
    distance = cv2.distanceTransform(np.pad(array, 1), cv2.DIST_L2, 3)[1:-1, 1:-1]
    row, col = np.unravel_index(int(np.argmax(distance)), distance.shape)
    return float(col), float(row)


def work_stability(logits: torch.Tensor, threshold: float, *, chunk: int = 8) -> torch.Tensor:
    """SAM's stability score (``calculate_stability_score``: IoU of the mask thresholded at
    ``threshold`` +- ``STABILITY_OFFSET``) of low-res logits, computed as SAM computes it: on
    the logits upsampled bilinearly (x4, the 1024-px work image; SamAutomaticMaskGenerator
    scores the masks upsampled to the image). On the 256-px grid itself a boundary pixel
    whose logit is within the offset counts as a whole low-res pixel, which scores objects
    systematically lower (a 0.4%-of-photo object 0.93 instead of 0.96 on the recall oracle,
    ``bench/recall.py``) and made SAM's 0.95 threshold drop objects SAM keeps.

    Args:
        logits: (N, h, w) float32 low-res logits.
        threshold: the mask threshold (0.0 for SAM).
        chunk: candidates upsampled at a time (each is 16 x h x w floats).

    Returns:
        (N,) float32 stability scores in 0-1.
    """
    scores = []
    for part in logits.split(chunk):
        work = F.interpolate(part[:, None].float(), scale_factor=4, mode="bilinear",
                             align_corners=False)[:, 0]
        scores.append(_amg.calculate_stability_score(work, threshold, STABILITY_OFFSET))
    return torch.cat(scores) if scores else torch.zeros(0)


def _chunks(count: int, size: int) -> list[tuple[int, int]]:
    """[first, last) index ranges covering ``count`` items ``size`` at a time, except that a
    last range of one item is merged into the one before: the decoder's batch of a single
    prompt takes other kernels (rounds differently in the last bit) than a batch of several,
    so a lone last prompt would not decode exactly as in one pass over the whole batch."""
    bounds = list(range(0, count, size)) + [count]
    if len(bounds) > 2 and bounds[-1] - bounds[-2] == 1:
        del bounds[-2]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def upscale_mask(mask: np.ndarray, size: tuple[int, int]) -> Mask:
    """Resize a (h, w) bool mask to ``size`` (H, W) with bilinear interpolation and a 0.5
    threshold (smooth edges, unlike nearest neighbour), kept as its tight crop.

    The whole (H, W) uint8 resize is made (OpenCV, one transient array), but only the rows
    and columns that the source's True pixels can reach are thresholded and kept: bilinear
    output pixel y reads source rows floor(s) and floor(s) + 1, s = (y + 0.5) * h / H - 0.5,
    so nothing outside the source box grown by one row and column can be True. Same pixels
    as thresholding the whole resize (tests/models/segment/test_segmenter.py).

    Returns:
        the :class:`models.segment.mask.Mask` of the (H, W) result.

    Raises:
        ValueError: ``mask`` is not two-dimensional.
    """
    height, width = size
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D (h, w), got shape {mask.shape}")
    if mask.shape == (height, width):
        return Mask.from_array(mask)
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return Mask.empty(height, width)
    cols = np.flatnonzero(mask.any(axis=0))
    resized = cv2.resize(
        mask.astype(np.uint8) * 255, (width, height), interpolation=cv2.INTER_LINEAR
    )
    y0, y1 = _reach(rows[0], rows[-1], mask.shape[0], height)
    x0, x1 = _reach(cols[0], cols[-1], mask.shape[1], width)
    return tight(resized[y0:y1, x0:x1] >= 128, y0, x0, (height, width))


def _reach(first: int, last: int, source: int, target: int) -> tuple[int, int]:
    """[start, stop) of the target pixels a bilinear resize from ``source`` to ``target``
    pixels can draw from source pixels ``first..last``, with one pixel to spare each side."""
    scale = target / source
    start = int(np.floor((first - 0.5) * scale - 0.5)) - 1
    stop = int(np.ceil((last + 1.5) * scale - 0.5)) + 2
    return max(start, 0), min(stop, target)
