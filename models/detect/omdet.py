"""OmDet-Turbo detector (transformers): words in, labelled boxes in photo pixels out, fast
enough to ask again about a photo already seen.

OmDet-Turbo (Zhao et al. 2024, "Real-time Transformer-based Open-Vocabulary Detection with
Efficient Fusion Head", arXiv:2403.06892) reads the photo (Swin-T backbone and hybrid encoder)
without the words, and each word on its own (CLIP's text tower: one embedding per word). The
words meet the photo only in the fusion decoder: each of its 900 queries is scored against
every word's embedding (cosine similarity), and a task prompt ("Detect cup, book.") is fused
with the queries. So, unlike Grounding DINO, whose encoder reads the words with the photo:

- a photo's encoder features are computed once and kept, per key
  (:class:`models.detect.detector.PhotoCache`);
- each word's embedding and each task prompt's are computed once per process (the model's
  own LRUs, enlarged to hold the whole vocabulary);
- the whole vocabulary is one decoder pass, every word a class of its own
  (:meth:`OmDetTurboDetector.detect_vocabulary`); its task prompt is the one the model's
  processor and the authors' engine make for a list of labels, "Detect a, b, ...", cut at
  CLIP's 77 tokens as both do (``truncation=True`` / ``clip.tokenize(truncate=True)``).

Boxes are selected as the authors' post-processing does (``OmDetV2Turbo.inference`` in
om-ai-lab/OmDet, transformers' ``post_process_grounded_object_detection``): every (query, word)
pair's sigmoid score, the best ``num_queries`` pairs, a score threshold, NMS per word.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from models.detect.detector import (
    MAX_DETECTIONS,
    MAX_VOCABULARY_DETECTIONS,
    Detection,
    PhotoCache,
    detections_from,
    quiet_loading,
)
from models.errors import BadPromptError, ModelError
from models.patches import apply_to_omdet_turbo
from models.runtime.allocator import drop_file_pages
from models.runtime.precision import autocast, autocast_dtype, store_for_autocast

log = logging.getLogger(__name__)

# 0.3 is the score threshold of the authors' demo (om-ai-lab/OmDet run_demo.py,
# conf_threshold=0.30) and of transformers' post-processing default; 0.5 their NMS IoU.
BOX_THRESHOLD = 0.3
NMS_IOU = 0.5
# CLIP's text length: a task prompt longer than this is cut, as the processor does.
MAX_TEXT_TOKENS = 77
# Word and task-prompt embeddings kept per process: the whole vocabulary (249 words, its task
# prompt) and the words children ask for. Each entry is one 512-wide vector (a task prompt:
# one per token), so 1,024 entries hold ~1-3 MB.
TEXT_CACHE_SIZE = 1024


class OmDetTurboDetector:
    """transformers' ``OmDetTurboForObjectDetection`` with its processor (a DETR image
    processor and CLIP's tokenizer), run in its three parts: image features once per photo,
    text embeddings once per word, the fusion decoder per question.

    Not thread-safe; the service serialises calls.
    """

    def __init__(
        self,
        model: Any,
        processor: Any,
        *,
        device: str = "cpu",
        box_threshold: float = BOX_THRESHOLD,
        nms_iou: float = NMS_IOU,
        max_detections: int = MAX_DETECTIONS,
        cache_size: int = 4,
        precision: str = "auto",
        weights_files: Sequence[Path] = (),
    ) -> None:
        """Wrap a loaded model (moved to ``device``, eval mode) and its processor;
        ``cache_size`` photos' encoder features (~4 MB each at 640x640 in bfloat16) are kept.

        ``precision`` ("auto", "float32", "bfloat16";
        :func:`models.runtime.precision.autocast_dtype`): with bfloat16 every part runs under
        ``torch.autocast`` and the linear and convolution weights are stored in bfloat16, the
        values autocast would round them to anyway
        (:func:`models.runtime.precision.store_for_autocast`), as Grounding DINO's are. CLIP's
        token embedding table (25 M values) stays on the weights file's mapping: a word reads
        only its tokens' rows. ``weights_files``: the safetensors files the model was loaded
        from, whose pages read for the bfloat16 copies are dropped from resident memory.

        Raises:
            ValueError: unknown precision.
        """
        from transformers.models.omdet_turbo.modeling_omdet_turbo import OmDetTurboLRUCache

        self.model = model.to(device).eval()
        self.processor = processor
        self.device = torch.device(device)
        self.autocast_dtype = autocast_dtype(precision, device)
        tokens = self.model.get_input_embeddings().weight
        if store_for_autocast(self.model, self.autocast_dtype, keep=(tokens,)):
            drop_file_pages(weights_files)
        size = max(int(getattr(self.model.config, "cache_size", 0)), TEXT_CACHE_SIZE)
        self.model.language_cache_class = OmDetTurboLRUCache(size)
        self.model.language_cache_prompt = OmDetTurboLRUCache(size)
        self.box_threshold = box_threshold
        self.nms_iou = nms_iou
        self.max_detections = max_detections
        self.images = PhotoCache(cache_size)

    @classmethod
    def from_pretrained(
        cls, path: Path, *, device: str = "cpu", **kwargs: Any
    ) -> OmDetTurboDetector:
        """Load model and processor from a local directory (``local_files_only=True``: this
        never touches the network) and apply :func:`models.patches.apply_to_omdet_turbo`.

        Raises:
            ModelError: the directory does not hold a loadable OmDet-Turbo model.
        """
        from transformers import AutoProcessor, OmDetTurboForObjectDetection

        try:
            with quiet_loading():
                processor = AutoProcessor.from_pretrained(str(path), local_files_only=True)
                model = OmDetTurboForObjectDetection.from_pretrained(
                    str(path), local_files_only=True
                )
        except Exception as exc:  # missing files, bad config, wrong architecture, no timm
            raise ModelError(
                f"The OmDet-Turbo model at {path} could not be loaded "
                f"({type(exc).__name__}: {str(exc)[:200]}). Run `flask models download` to "
                "replace it."
            ) from exc
        patched = apply_to_omdet_turbo(model)
        log.info("OmDet-Turbo loaded from %s on %s (patched modules: %s)", path, device, patched)
        files = sorted(Path(path).glob("*.safetensors"))
        return cls(model, processor, device=device, weights_files=files, **kwargs)

    # ------------------------------------------------------------------ the photo

    def work_size(self) -> tuple[int, int]:
        """(h, w) in pixels the model sees every photo and crop at: its image processor's
        size, 640x640 for the released model (the photo is resized to it without keeping its
        aspect, as the processor does; the timm Swin backbone takes only that size)."""
        size = self.processor.image_processor.size
        if "height" in size and "width" in size:
            return int(size["height"]), int(size["width"])
        side = int(self.model.config.image_size)  # a processor without a fixed size
        return side, side

    def _pixels(self, image: Image.Image) -> torch.Tensor:
        """``pixel_values`` (1, 3, h, w) float32 of ``image`` at :meth:`work_size`: resized with
        Pillow (bilinear, as the processor's resample; Pillow's reducing resize is what
        Grounding DINO's loader uses too, ~0.05 s for a 12-megapixel photo against ~0.5 s
        through a processor's own resize, measured there), then normalised by the image
        processor (its mean and standard deviation)."""
        height, width = self.work_size()
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        small = rgb.resize((width, height), Image.Resampling.BILINEAR, reducing_gap=2.0)
        encoded = self.processor.image_processor(
            images=small, do_resize=False, do_pad=False, return_tensors="pt"
        )
        return encoded["pixel_values"].to(self.device)

    def _features(self, image: Image.Image, key: str | None) -> tuple[torch.Tensor, ...]:
        """The hybrid encoder's feature maps of ``image`` (``extracted_states``: 3 levels of
        (1, 256, h, w), strides 8, 16, 32), from the cache under ``key`` when there."""
        cache_key = PhotoCache.key_for(key, image)
        cached = self.images.get(cache_key)
        if cached is not None:
            return cached
        pixels = self._pixels(image)
        with torch.inference_mode(), autocast(self.device.type, self.autocast_dtype):
            maps = self.model.vision_backbone(pixels)
            features = tuple(self.model.encoder(maps, return_dict=True).extracted_states)
        self.images.put(cache_key, features)
        return features

    # ------------------------------------------------------------------ the words

    def _tokens(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids and attention mask (N, L) of ``texts``, cut at 77 tokens and padded to
        the longest, not to 77 as the processor pads: CLIP's text tower is causal, so a token's
        output does not depend on the padding after it, and OmDet-Turbo reads a word at its
        end token and a task prompt up to its last token (same embeddings within float
        rounding, tests/models/detect/test_omdet.py; 2 words and a task prompt: 3 x 77 -> 3 x
        ~7 tokens through the 12 text layers)."""
        encoded = self.processor.tokenizer(
            list(texts), padding="longest", truncation=True, max_length=MAX_TEXT_TOKENS,
            return_tensors="pt",
        )  # fmt: skip
        return encoded["input_ids"].to(self.device), encoded["attention_mask"].to(self.device)

    @staticmethod
    def task_prompt(words: Sequence[str]) -> str:
        """The task prompt for ``words``, as the model's processor makes it by default:
        ``["cup", "book"]`` -> ``"Detect cup, book."`` (cut at 77 tokens where it is used)."""
        return f"Detect {', '.join(words)}."

    def _decode(
        self, features: tuple[torch.Tensor, ...], words: Sequence[str]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One fusion-decoder pass of ``words`` on a photo's encoder features.

        Returns:
            boxes (Q, 4) float32 cxcywh normalised to 0-1 by the work size (so by the photo's
            size too) and scores (Q, N) float32 0-1, the sigmoid of each query's logit for each
            of the N words.
        """
        class_ids, class_mask = self._tokens(words)
        task_ids, task_mask = self._tokens([self.task_prompt(words)])
        structure = torch.tensor([len(words)], dtype=torch.long, device=self.device)
        with torch.inference_mode(), autocast(self.device.type, self.autocast_dtype):
            classes, task, task_attention = self.model.get_language_embedding(
                class_ids, class_mask, task_ids, task_mask, structure
            )
            out = self.model.decoder(list(features), classes, task, task_attention,
                                     return_dict=True)  # fmt: skip
        boxes = out.decoder_coords[-1][0].float().cpu()
        scores = out.decoder_classes[-1][0].float().sigmoid().cpu()
        return boxes, scores

    def _select(
        self,
        boxes: torch.Tensor,
        scores: torch.Tensor,
        words: Sequence[str],
        photo_size: tuple[int, int],
        limit: int,
    ) -> list[Detection]:
        """Detections from one pass, as the authors' post-processing selects them: the best
        ``Q`` (query, word) pairs of ``scores`` (Q, N) (a query may name two words), those
        with a score > ``box_threshold``, their boxes (``boxes`` (Q, 4) normalised cxcywh)
        scaled to photo pixels (``photo_size`` (h, w)) and clipped, empty ones dropped, NMS per
        word at ``nms_iou``; highest score first, at most ``limit``."""
        queries, count = scores.shape
        flat, order = scores.flatten().topk(queries)  # count >= 1: at least Q pairs
        keep = flat > self.box_threshold
        if not bool(keep.any()):
            return []
        flat, order = flat[keep], order[keep]
        return detections_from(boxes[order // count], flat, order % count, words, photo_size,
                               self.nms_iou, limit)  # fmt: skip

    def _find(self, image: Image.Image, words: list[str], key: str | None,
              limit: int) -> list[Detection]:  # fmt: skip
        """One decoder pass of ``words`` on ``image``'s (cached) features, selected by
        :meth:`_select` with at most ``limit`` detections."""
        boxes, scores = self._decode(self._features(image, key), words)
        return self._select(boxes, scores, words, (image.height, image.width), limit)

    # ------------------------------------------------------------------ public

    def detect(
        self, image: Image.Image, phrases: Sequence[str], *, key: str | None = None
    ) -> list[Detection]:
        """Find the phrases in an RGB photo (or a crop of one).

        Args:
            image: RGB PIL image, W x H pixels, any size (seen at :meth:`work_size`).
            phrases: lower-case phrases from ``models.prompts.parse_prompt`` (1-20), each a
                word the model reads on its own.
            key: cache key of the photo (e.g. "photo-12-9f86d081884c7d65"): its encoder
                features are kept in a small LRU, so asking again with other words runs only
                the text tower for words not seen before and the fusion decoder.

        Returns:
            At most ``max_detections`` detections, score (sigmoid of the word's logit, 0-1)
            > ``box_threshold``, NMS per word, highest score first; boxes xyxy float in
            ``image``'s pixels.

        Raises:
            BadPromptError: no phrase.
        """
        if not phrases:
            raise BadPromptError('Please type what to look for, for example "cat, ball".')
        return self._find(image, list(phrases), key, self.max_detections)

    def detect_vocabulary(
        self, image: Image.Image, words: Sequence[str], *, key: str | None = None
    ) -> list[Detection]:
        """Look for every word of a vocabulary (e.g. ``models.detect.vocabulary.VOCABULARY``)
        in one pass: every word is a class of its own, scored by every query; the task prompt
        is :meth:`task_prompt` of the words, cut at 77 tokens (module docstring).

        Args:
            image: RGB PIL image, W x H pixels, any size.
            words: lower-case words or short phrases (249 for the vocabulary).
            key: cache key of the photo, as in :meth:`detect`.

        Returns:
            Detections as :meth:`detect` selects them, at most ``MAX_VOCABULARY_DETECTIONS``;
            a box may be named by two words (both kept for the naming's margin rule).

        Raises:
            ValueError: no words.
        """
        if not words:
            raise ValueError("no words to look for")
        return self._find(image, list(words), key, MAX_VOCABULARY_DETECTIONS)

    def cached_keys(self) -> set[str]:
        """The photo keys (as given to :meth:`detect`) whose encoder features are cached."""
        return self.images.photo_keys()

    def forget(self, key: str) -> None:
        """Drop the cached encoder features of ``key`` (every photo size)."""
        self.images.forget_photo(key)

