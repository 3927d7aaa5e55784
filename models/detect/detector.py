"""Grounding DINO detector (transformers): phrases in, labelled boxes in photo pixels out.

Grounding DINO (Liu et al. 2023, arXiv:2303.05499) scores each of its queries (900 for the
released models) against every text token. A box's score for a phrase is the mean sigmoid
probability over the phrase's tokens, as the authors' COCO evaluation scores a category
(``PostProcessCocoGrounding`` in IDEA-Research/GroundingDINO's demo/test_ap_on_coco.py: token
probabilities times the positive map of ``create_positive_map_from_span``, whose row for a
category is 1/n on its n tokens). The demo's box score, the highest token probability, would
score "teddy bear" as high as "bear" on any bear (:func:`phrase_scores`).
"""

from __future__ import annotations

import contextlib
import logging
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from PIL import Image
from torchvision.ops import batched_nms, box_convert

from models.detect.vocabulary import caption_of, chunk_words
from models.errors import BadPromptError, ModelError
from models.patches import apply_to_grounding_dino
from models.runtime.allocator import drop_file_pages
from models.runtime.precision import autocast, autocast_dtype, store_for_autocast

log = logging.getLogger(__name__)

# 0.35 is the box threshold of the Grounding DINO README demo, which applies it to a box's
# highest token probability; here it applies to the label's score, the mean over the label's
# tokens. For a one-token phrase (most words) the two are the same number. A phrase of several
# tokens must hold it on average, so a box that matches only part of it (a real bear when
# asked for "teddy bear") is dropped instead of being shown under a name that does not fit.
# The demo's text threshold (0.25) has no use here: a label is the best-scoring phrase, not
# the tokens above a threshold.
BOX_THRESHOLD = 0.35
# Boxes of one label overlapping more than this (IoU) are duplicates, and the lower-scored one
# is dropped. The reference post-processing (``PostProcessCocoGrounding``) has no NMS: COCO AP
# charges a duplicate only as one more low-ranked false positive, and one-to-one matching in
# training makes duplicates rare, not absent. Here every kept box becomes an outlined object,
# so two queries on one toy would be two toys. Grounded-Segment-Anything's
# automatic_label_ram_demo.py, the same tags -> Grounding DINO -> SAM pipeline, runs NMS at
# IoU 0.5 on the boxes before SAM, across labels; here it is per label, so one box found as
# "dog" and "puppy" keeps both for the naming's margin rule (models/detect/naming.py). At 0.5 the
# toys of a pile of one kind, each overlapping its neighbours by less than half of their
# union, are all kept (tests/models/detect/test_detector.py).
NMS_IOU = 0.5
# Shortest/longest edge the image is resized to before the model. The released model is run
# at 800/1333; it was trained with random shortest edges 480-800 (DINO's multi-scale
# augmentation, which Grounding DINO's training configs reuse), so 512 stays inside the sizes
# it has seen, and costs about half of 800 (the full-size model with random weights on a
# 2-core x86-64 machine: 8.6 s at 800x1066 vs 4.5 s at 512x682). 853 keeps the 4:3 photo's
# aspect at 512. Smaller photos and crops are enlarged to it, not seen at their own size
# (:meth:`GroundingDinoDetector.work_size`).
SHORTEST_EDGE = 512
LONGEST_EDGE = 853
MAX_DETECTIONS = 20
# Vocabulary passes (everything mode's names) keep more boxes: one per object in a busy photo.
MAX_VOCABULARY_DETECTIONS = 100


class Detection(NamedTuple):
    """One detected object: a (label, score, box) tuple with named fields.

    Attributes:
        label: the prompt phrase it matches best, e.g. "cat".
        score: 0-1, the mean sigmoid probability over that phrase's tokens (as Grounding
            DINO's own COCO evaluation scores a phrase; :func:`phrase_scores`).
        box: (x0, y0, x1, y1) in photo pixels, clipped to the photo.
    """

    label: str
    score: float
    box: tuple[float, float, float, float]


class GroundingDinoDetector:
    """transformers' ``GroundingDinoForObjectDetection`` with its ``AutoProcessor``.

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
        shortest_edge: int = SHORTEST_EDGE,
        longest_edge: int = LONGEST_EDGE,
        max_detections: int = MAX_DETECTIONS,
        cache_size: int = 4,
        precision: str = "auto",
        weights_files: Sequence[Path] = (),
    ) -> None:
        """Wrap a loaded model (moved to ``device``, eval mode) and its processor;
        ``cache_size`` photos' backbone features (~4 MB each at 512 px in bfloat16) are kept.

        ``precision`` ("auto", "float32", "bfloat16";
        :func:`models.runtime.precision.autocast_dtype`): with bfloat16 the forward pass runs
        under ``torch.autocast``, whose matrix products are about twice as fast as float32
        on a CPU with AVX512-BF16 (measured on 2 cores:
        4.8 s -> 2.4 s for one 512x768 pass on one thread) while keeping the boxes (test:
        tests/models/detect/test_detector_precision.py). The linear and convolution weights are
        then stored in bfloat16, which autocast would round them to anyway: same boxes,
        ~300 MB less memory (:func:`models.runtime.precision.store_for_autocast`);
        ``weights_files``, the safetensors files the model was loaded from (by ``mmap``),
        have the file pages read for that copy dropped from resident memory
        (:func:`models.runtime.allocator.drop_file_pages`).

        Raises:
            ValueError: unknown precision.
        """
        self.model = model.to(device).eval()
        self.weights_files: list[Path] = list(weights_files)
        self.autocast_dtype = autocast_dtype(precision, device)
        # BERT's word embeddings (94 MB in float32) stay on the weights file's mapping: a
        # caption reads only its tokens' rows, so only those pages become resident.
        words = self.model.model.text_backbone.embeddings.word_embeddings.weight
        if store_for_autocast(self.model, self.autocast_dtype, keep=(words,)):
            drop_file_pages(self.weights_files)
        self.processor = processor
        self.device = torch.device(device)
        self.box_threshold = box_threshold
        self.nms_iou = nms_iou
        self.shortest_edge = shortest_edge
        self.longest_edge = longest_edge
        self.max_detections = max_detections
        self._backbone_cache = BackboneCache(self.model.model.backbone, size=cache_size)
        self._text_cache = TextCache(self.model.model.text_backbone)

    @classmethod
    def from_pretrained(
        cls, path: Path, *, device: str = "cpu", **kwargs: Any
    ) -> GroundingDinoDetector:
        """Load model and processor from a local directory (``local_files_only=True``: this
        never touches the network) and apply :func:`models.patches.apply_to_grounding_dino`.

        Raises:
            ModelError: the directory does not hold a loadable Grounding DINO model.
        """
        from transformers import AutoProcessor, GroundingDinoForObjectDetection

        try:
            with quiet_loading():  # "Loading weights" bars only clutter worker logs
                processor = AutoProcessor.from_pretrained(str(path), local_files_only=True)
                model = GroundingDinoForObjectDetection.from_pretrained(
                    str(path), local_files_only=True
                )
        except Exception as exc:  # missing files, bad config, wrong architecture
            raise ModelError(
                f"The Grounding DINO model at {path} could not be loaded "
                f"({type(exc).__name__}: {str(exc)[:200]}). Run `flask models download` to "
                "replace it."
            ) from exc
        # Deformable attention's sampling as a weighted gather (same outputs, a third of a
        # pass's time, no stacked samples in memory) and the fusion attention with its
        # projections folded into the text side (same outputs, half its time): models.patches.
        patched = apply_to_grounding_dino(model)
        log.info("Grounding DINO loaded from %s on %s (patched modules: %s)", path, device, patched)
        files = sorted(Path(path).glob("*.safetensors"))
        return cls(model, processor, device=device, weights_files=files, **kwargs)

    def _encode_text(self, phrases: Sequence[str]) -> tuple[str, np.ndarray]:
        """Caption "cat. ball." and, per token, the index of its phrase (-1 for none).

        Raises:
            BadPromptError: the caption is longer than the model's text limit (256 tokens).
        """
        caption, spans, start = caption_of(phrases), [], 0
        for phrase in phrases:
            spans.append((start, start + len(phrase)))
            start += len(phrase) + 2  # ". " between phrases
        tokens = self.processor.tokenizer(caption, return_offsets_mapping=True)
        if len(tokens["input_ids"]) > self.max_text_len:
            raise BadPromptError("That is too much text to look for at once; please shorten it.")
        owner = np.full(len(tokens["input_ids"]), -1, dtype=np.int64)
        for t, (a, b) in enumerate(tokens["offset_mapping"]):
            if b <= a:
                continue  # special tokens have empty spans
            for p, (s, e) in enumerate(spans):
                if a >= s and b <= e:
                    owner[t] = p
        return caption, owner

    @property
    def max_text_len(self) -> int:
        """Most tokens (special tokens included) one caption may have: 256 for the released
        models (``config.max_text_len``)."""
        return int(getattr(self.model.config, "max_text_len", 256))

    def count_tokens(self, caption: str) -> int:
        """Tokens of ``caption`` as the model sees it, [CLS] and [SEP] included."""
        return len(self.processor.tokenizer(caption)["input_ids"])

    def work_size(self, photo_size: tuple[int, int]) -> tuple[int, int]:
        """(h, w) in pixels the model sees a photo (or a crop) of ``photo_size`` (h, w) pixels
        at: scaled so that the shortest edge is ``shortest_edge`` and the longest at most
        ``longest_edge`` (the processor's rule, ``GroundingDinoImageProcessor``'s resize), up
        or down. Small inputs are enlarged too: the model was trained at shortest edges of
        480-800 px (``SHORTEST_EDGE``), and a tapped object's crop of 160 px seen at 160 px is
        far outside the sizes it has seen. Each edge is at least 1 px."""
        height, width = photo_size
        scale = min(self.shortest_edge / min(height, width), self.longest_edge / max(height, width))
        return max(1, round(height * scale)), max(1, round(width * scale))

    def _pixels(self, image: Image.Image) -> dict[str, torch.Tensor]:
        """``pixel_values`` (1, 3, h, w) float32 normalised and ``pixel_mask`` (1, h, w) int64
        of the photo at :meth:`work_size` (h, w), on ``device``. The photo is resized with
        Pillow first, bilinear (a 12-megapixel photo through the processor's own resize costs
        ~0.5 s; Pillow's reducing resize ~0.05 s; a small crop is enlarged), then the
        processor normalises it."""
        height, width = self.work_size((image.height, image.width))
        rgb = image if image.mode == "RGB" else image.convert("RGB")  # no 12-MP copy
        small = rgb.resize((width, height), Image.Resampling.BILINEAR, reducing_gap=2.0)
        encoded = self.processor.image_processor(
            images=small,
            return_tensors="pt",
            size={"shortest_edge": min(height, width), "longest_edge": max(height, width)},
        )
        return {k: v.to(self.device) for k, v in encoded.items() if k.startswith("pixel_")}

    def _run(
        self, pixels: dict[str, torch.Tensor], phrases: Sequence[str], key: str | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One forward pass for ``phrases`` on prepared pixels; the backbone's features come
        from (or go to) the cache under ``key``.

        Returns:
            boxes (Q, 4) float32 cxcywh normalised to 0-1 by the work size (so also by the
            photo's size: the resize keeps its aspect to within a pixel), and per-phrase
            scores (Q, P) float32 0-1, the mean sigmoid probability over the phrase's tokens
            (:func:`phrase_scores`).

        Raises:
            BadPromptError: the phrases exceed the text limit.
        """
        caption, owner = self._encode_text(phrases)
        text = self.processor.tokenizer(caption, return_tensors="pt").to(self.device)
        self._backbone_cache.key = key
        try:
            with torch.inference_mode(), autocast(self.device.type, self.autocast_dtype):
                outputs = self.model(**pixels, **text)
        finally:
            self._backbone_cache.key = None
        probs = outputs.logits[0].sigmoid().float().cpu()  # (queries, max_text_len)
        return outputs.pred_boxes[0].float().cpu(), phrase_scores(probs, owner, len(phrases))

    def _select(
        self,
        boxes: torch.Tensor,
        phrase_scores: torch.Tensor,
        phrases: Sequence[str],
        photo_size: tuple[int, int],
        limit: int,
    ) -> list[Detection]:
        """Detections from one pass's outputs.

        Each query is labelled with its best-scoring phrase (``phrase_scores`` (Q, P) float32,
        :func:`phrase_scores`; a tie goes to the first phrase) and kept if that score is >
        ``box_threshold``; its box (``boxes`` (Q, 4) float32 normalised cxcywh) is scaled to
        photo pixels (``photo_size`` (h, w)), clipped to the photo and dropped if empty; then
        per-label NMS at ``nms_iou`` (see ``NMS_IOU``), highest score first, at most
        ``limit``."""
        scores, labels = phrase_scores.max(dim=1)
        keep = scores > self.box_threshold
        if not bool(keep.any()):
            return []
        return detections_from(boxes[keep], scores[keep], labels[keep], phrases, photo_size,
                               self.nms_iou, limit)  # fmt: skip

    def detect(
        self, image: Image.Image, phrases: list[str], *, key: str | None = None
    ) -> list[Detection]:
        """Find the phrases in an RGB photo (or a crop of one), seen at :meth:`work_size`.

        Args:
            image: RGB PIL image, W x H pixels, any size (small ones are enlarged).
            phrases: lower-case phrases from ``models.prompts.parse_prompt`` (1-20).
            key: cache key of the photo (e.g. "photo-12-9f86d081884c7d65"): its backbone
                features are kept in a small LRU, so asking again with other words skips the
                image backbone.

        Returns:
            At most ``max_detections`` detections, each labelled with its best phrase and
            kept if that phrase's score (the mean probability over its tokens,
            :func:`phrase_scores`) is > ``box_threshold``; duplicates of the same label
            removed by NMS (IoU > ``nms_iou``), highest score first; boxes are xyxy float in
            ``image``'s pixels (the model's normalised cxcywh boxes times W and H).

        Raises:
            BadPromptError: no phrase, or the phrases exceed the text limit.
        """
        if not phrases:
            raise BadPromptError('Please type what to look for, for example "cat, ball".')
        self._encode_text(phrases)  # refuse over-long prompts before any image work
        pixels = self._pixels(image)
        boxes, scores = self._run(pixels, phrases, PhotoCache.key_for(key, image))
        return self._select(boxes, scores, phrases, (image.height, image.width),
                            self.max_detections)

    def detect_vocabulary(
        self, image: Image.Image, words: Sequence[str], *, key: str | None = None
    ) -> list[Detection]:
        """Look for every word of a vocabulary (e.g. ``models.detect.vocabulary.VOCABULARY``).

        The words are split into captions that fit the text encoder (``max_text_len``, 256
        tokens; :func:`models.detect.vocabulary.chunk_words`), one forward pass each; the image
        backbone runs once for all of them (its features are cached, under ``key`` if given).

        Args:
            image: RGB PIL image, W x H pixels, any size (small ones are enlarged).
            words: lower-case words or short phrases.
            key: cache key of the photo, as in :meth:`detect`.

        Returns:
            Detections of all passes (mean-token score > ``box_threshold``, per-label NMS
            within a pass; as :meth:`detect`), highest score first, at most
            ``MAX_VOCABULARY_DETECTIONS``; boxes xyxy in ``image``'s pixels.
            A box may appear twice with different words from different passes.

        Raises:
            ValueError: a single word is longer than the text limit.
        """
        chunks = chunk_words(words, self.count_tokens, self.max_text_len)
        pixels = self._pixels(image)
        cache_key = PhotoCache.key_for(key, image) if key is not None else "__vocabulary__"
        found: list[Detection] = []
        try:
            for chunk in chunks:
                boxes, scores = self._run(pixels, chunk, cache_key)
                found += self._select(
                    boxes, scores, chunk, (image.height, image.width), MAX_VOCABULARY_DETECTIONS
                )
        finally:
            if key is None:
                self._backbone_cache.forget(cache_key)
        found.sort(key=lambda d: d.score, reverse=True)
        return found[:MAX_VOCABULARY_DETECTIONS]

    def cached_keys(self) -> set[str]:
        """The photo keys (as given to :meth:`detect`) whose backbone features are cached."""
        return self._backbone_cache.cache.photo_keys()

    def forget(self, key: str) -> None:
        """Drop the cached backbone features of ``key`` (every photo size)."""
        self._backbone_cache.cache.forget_photo(key)


def detections_from(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    labels: torch.Tensor,
    names: Sequence[str],
    photo_size: tuple[int, int],
    nms_iou: float,
    limit: int,
) -> list[Detection]:
    """Detections of a DETR-style detector's kept queries, in photo pixels.

    Args:
        boxes: (K, 4) float32 normalised (0-1) cxcywh boxes.
        scores: (K,) float32 scores, 0-1.
        labels: (K,) int64 indices into ``names``.
        names: the label of each index.
        photo_size: (height, width) of the photo, pixels.
        nms_iou: IoU above which NMS drops the lower-scored of two boxes of the same label.
        limit: at most this many detections.

    Returns:
        Boxes scaled to xyxy pixels and clipped to the photo, empty ones dropped, NMS per label
        (torchvision's ``batched_nms``), highest score first.
    """
    height, width = photo_size
    xyxy = box_convert(boxes, "cxcywh", "xyxy")
    xyxy = xyxy * torch.tensor([width, height, width, height], dtype=torch.float32)
    xyxy[:, 0::2] = xyxy[:, 0::2].clamp(0, width)
    xyxy[:, 1::2] = xyxy[:, 1::2].clamp(0, height)
    valid = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
    xyxy, scores, labels = xyxy[valid], scores[valid], labels[valid]
    order = batched_nms(xyxy, scores, labels, nms_iou)[:limit]
    return [
        Detection(
            label=names[int(labels[i])],
            score=float(scores[i]),
            box=tuple(float(v) for v in xyxy[i].tolist()),  # type: ignore[arg-type]
        )
        for i in order
    ]


def phrase_scores(probs: torch.Tensor, owner: np.ndarray, count: int) -> torch.Tensor:
    """Each query's score for each phrase, as Grounding DINO's COCO evaluation computes it.

    The evaluation (``PostProcessCocoGrounding`` in IDEA-Research/GroundingDINO's
    demo/test_ap_on_coco.py) multiplies the token probabilities by a positive map
    (``create_positive_map_from_span``, groundingdino/util/vl_utils.py) whose row for a
    category is 1 on its n tokens divided by n (plus 1e-6, left out here: it changes a score
    by less than 1e-6 of it), i.e. the mean probability over the phrase's tokens. So
    "teddy bear" scores high only where "teddy" is high too; the highest single token (the
    demo's box score) would score it as high as "bear" on any bear.

    Args:
        probs: (Q, T) float32 sigmoid token probabilities of Q queries over T text positions.
        owner: (N,) int array, the phrase index 0..P-1 of each text position and -1 for
            special tokens and separators (``GroundingDinoDetector._encode_text``); positions
            beyond T (N > T) or missing (N < T) belong to no phrase.
        count: number of phrases P.

    Returns:
        (Q, P) float32, 0-1: the mean probability over each phrase's tokens; 0 for a phrase
        with no token among the T positions.
    """
    num_tokens = min(len(owner), probs.shape[1])
    positive = torch.zeros(count, probs.shape[1], dtype=probs.dtype)
    for p in range(count):
        idx = torch.as_tensor(np.flatnonzero(owner[:num_tokens] == p))
        if len(idx):
            positive[p, idx] = 1.0 / len(idx)
    return probs @ positive.T


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """transformers' progress bars ("Loading weights") off inside the block, as they were
    after it (``transformers.utils.logging``'s switch is process-wide)."""
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if bars:
            hf_logging.enable_progress_bar()


class PhotoCache:
    """An LRU of per-photo values (a detector's image features), keyed by
    :meth:`key_for`: "<photo key>@<W>x<H>", so a key reused for a photo of another size never
    hits. Keys without "@" (a detector's own scratch entries) are kept too but are no photo's.
    """

    def __init__(self, size: int = 4) -> None:
        """Keep at most ``size`` entries (0: keep none)."""
        self.size = size
        self.entries: OrderedDict[str, Any] = OrderedDict()

    @staticmethod
    def key_for(key: str | None, image: Image.Image) -> str | None:
        """The entry key of photo ``key`` seen as ``image`` (None for a None key)."""
        return None if key is None else f"{key}@{image.width}x{image.height}"

    def get(self, key: str | None) -> Any:
        """The value kept under ``key``, or None (always None for a None key)."""
        if key is None or key not in self.entries:
            return None
        self.entries.move_to_end(key)
        return self.entries[key]

    def put(self, key: str | None, value: Any) -> None:
        """Keep ``value`` under ``key`` (nothing for a None key), dropping the least recently
        used entries beyond ``size``."""
        if key is None or self.size <= 0:
            return
        self.entries[key] = value
        self.entries.move_to_end(key)
        while len(self.entries) > self.size:
            self.entries.popitem(last=False)

    def forget(self, key: str) -> None:
        """Drop the entry ``key``, if any."""
        self.entries.pop(key, None)

    def photo_keys(self) -> set[str]:
        """The photo keys (as given to :meth:`key_for`) with an entry."""
        return {entry.rsplit("@", 1)[0] for entry in self.entries if "@" in entry}

    def forget_photo(self, key: str) -> None:
        """Drop every entry of photo ``key`` (every size)."""
        for entry in [e for e in self.entries if "@" in e and e.rsplit("@", 1)[0] == key]:
            del self.entries[entry]


class BackboneCache:
    """Wraps the Swin image backbone's ``forward`` (``backbone.conv_encoder``) so that several
    text passes over one photo compute it once. Entries are kept per key in a
    :class:`PhotoCache` of ``size``.

    The feature maps depend only on ``pixel_values``/``pixel_mask``; an entry is used only when
    the pixel shape matches. Only the feature maps and their masks are kept (~4 MB at 512 px
    under bfloat16 autocast, in which Swin returns them): the position embeddings, a sine
    function of the pixel mask (``GroundingDinoSinePositionEmbedding``) as large again, are
    recomputed by the model each pass in milliseconds.
    """

    def __init__(self, backbone: torch.nn.Module, size: int = 4) -> None:
        """Install the cache on ``backbone`` (``model.model.backbone``)."""
        self.key: str | None = None
        self.cache = PhotoCache(size)
        encoder = backbone.conv_encoder
        self._forward = encoder.forward
        encoder.forward = self.forward

    @property
    def entries(self) -> OrderedDict[str, tuple[tuple[int, ...], list[Any]]]:
        """The kept entries: key -> (pixel shape, [(feature map, mask)] per level)."""
        return self.cache.entries

    def forward(self, pixel_values: torch.Tensor, pixel_mask: torch.Tensor) -> list[Any]:
        """The backbone's [(feature map (1, C, h, w), mask (1, h, w) bool)] per level, from
        the cache when possible (a new list each call)."""
        shape = tuple(pixel_values.shape)
        hit = self.cache.get(self.key)
        if hit is not None and hit[0] == shape:
            return list(hit[1])
        out = self._forward(pixel_values, pixel_mask)
        self.cache.put(self.key, (shape, list(out)))
        return out

    def forget(self, key: str) -> None:
        """Drop ``key``'s entry, if any."""
        self.cache.forget(key)


class TextCache:
    """Wraps the text backbone's ``forward`` (BERT) so that a caption seen before is not
    encoded again: the vocabulary's captions are the same for every photo. BERT's output
    depends only on its inputs (token ids, attention mask, token types, positions), which
    are the cache key; entries are kept in an LRU of ``size``.
    """

    def __init__(self, text_backbone: torch.nn.Module, size: int = 16) -> None:
        """Install the cache on ``text_backbone`` (``model.model.text_backbone``)."""
        self.size = size
        self.entries: OrderedDict[bytes, Any] = OrderedDict()
        self._forward = text_backbone.forward
        text_backbone.forward = self.forward

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The text backbone's output, from the cache when the same inputs were seen."""
        tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
        others = [a for a in (*args, *kwargs.values()) if not isinstance(a, torch.Tensor)]
        key = repr((others, sorted(kwargs))).encode() + b"".join(
            repr((t.dtype, tuple(t.shape))).encode() + t.detach().cpu().numpy().tobytes()
            for t in tensors
        )
        hit = self.entries.get(key)
        if hit is not None:
            self.entries.move_to_end(key)
            return hit
        output = self._forward(*args, **kwargs)
        if self.size > 0:
            self.entries[key] = output
            while len(self.entries) > self.size:
                self.entries.popitem(last=False)
        return output
