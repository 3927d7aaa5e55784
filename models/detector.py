"""Grounding DINO detector (transformers): phrases in, labelled boxes in photo pixels out.

Grounding DINO (Liu et al. 2023, arXiv:2303.05499) scores each of its queries (900 for the
released models) against every text token; a box's score for a phrase is the highest
sigmoid probability over the phrase's tokens, as in the authors' demo, where the box score is
the maximum token probability and the phrase is read from tokens above a text threshold.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from PIL import Image
from torchvision.ops import batched_nms, box_convert

from models.errors import BadPromptError, ModelError

log = logging.getLogger(__name__)

# 0.35 is the box threshold of the Grounding DINO README demo (text threshold 0.25, which is
# subsumed here because a label is the best-scoring phrase, not tokens above a threshold).
BOX_THRESHOLD = 0.35
# Boxes of one label overlapping more than this (IoU) are duplicates. Grounding DINO has no
# NMS of its own; 0.5 is the conventional per-class value (torchvision's Faster R-CNN
# ``box_nms_thresh`` default).
NMS_IOU = 0.5
# Shortest/longest edge the image is resized to before the model: the released model is run
# at 800/1333; 640/1066 keeps the aspect limit and costs ~45% less (MEASUREMENTS.md:
# 8.6 s at 800x1066 vs 4.5 s at 512x682 on 2 cores).
SHORTEST_EDGE = 640
LONGEST_EDGE = 1066
MAX_DETECTIONS = 20


class Detection(NamedTuple):
    """One detected object: a (label, score, box) tuple with named fields.

    Attributes:
        label: the prompt phrase it matches best, e.g. "cat".
        score: 0-1 (sigmoid probability of the best token of that phrase).
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
    ) -> None:
        """Wrap a loaded model (moved to ``device``, eval mode) and its processor."""
        self.model = model.to(device).eval()
        self.processor = processor
        self.device = torch.device(device)
        self.box_threshold = box_threshold
        self.nms_iou = nms_iou
        self.shortest_edge = shortest_edge
        self.longest_edge = longest_edge
        self.max_detections = max_detections

    @classmethod
    def from_pretrained(
        cls, path: Path, *, device: str = "cpu", **kwargs: Any
    ) -> GroundingDinoDetector:
        """Load model and processor from a local directory (``local_files_only=True``: this
        never touches the network).

        Raises:
            ModelError: the directory does not hold a loadable Grounding DINO model.
        """
        from transformers import AutoProcessor, GroundingDinoForObjectDetection
        from transformers.utils import logging as hf_logging

        bars = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # "Loading weights" bars only clutter worker logs
        try:
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
        finally:
            if bars:
                hf_logging.enable_progress_bar()
        log.info("Grounding DINO loaded from %s on %s", path, device)
        return cls(model, processor, device=device, **kwargs)

    def _encode_text(self, phrases: list[str]) -> tuple[str, np.ndarray]:
        """Caption "cat. ball." and, per token, the index of its phrase (-1 for none).

        Raises:
            BadPromptError: the caption is longer than the model's text limit (256 tokens).
        """
        caption, spans, start = "", [], 0
        for phrase in phrases:
            spans.append((start, start + len(phrase)))
            caption += phrase + ". "
            start = len(caption)
        caption = caption.strip()
        tokens = self.processor.tokenizer(caption, return_offsets_mapping=True)
        limit = getattr(self.model.config, "max_text_len", 256)
        if len(tokens["input_ids"]) > limit:
            raise BadPromptError("That is too much text to look for at once; please shorten it.")
        owner = np.full(len(tokens["input_ids"]), -1, dtype=np.int64)
        for t, (a, b) in enumerate(tokens["offset_mapping"]):
            if b <= a:
                continue  # special tokens have empty spans
            for p, (s, e) in enumerate(spans):
                if a >= s and b <= e:
                    owner[t] = p
        return caption, owner

    def detect(self, image: Image.Image, phrases: list[str]) -> list[Detection]:
        """Find the phrases in an RGB photo.

        Args:
            image: RGB PIL image, W x H pixels.
            phrases: lower-case phrases from ``models.prompts.parse_prompt`` (1-20).

        Returns:
            At most ``max_detections`` detections with score > ``box_threshold``, duplicates
            of the same label removed by NMS (IoU > ``nms_iou``), highest score first; boxes
            are xyxy in photo pixels (the model's normalised cxcywh boxes times the photo size).

        Raises:
            BadPromptError: no phrase, or the phrases exceed the text limit.
        """
        if not phrases:
            raise BadPromptError('Please type what to look for, for example "cat, ball".')
        caption, owner = self._encode_text(phrases)
        inputs = self.processor(
            images=image,
            text=caption,
            return_tensors="pt",
            size={"shortest_edge": self.shortest_edge, "longest_edge": self.longest_edge},
        ).to(self.device)
        with torch.inference_mode():
            outputs = self.model(**inputs)
        probs = outputs.logits[0].sigmoid().float().cpu()  # (queries, max_text_len)
        num_tokens = min(len(owner), probs.shape[1])
        phrase_scores = torch.zeros(probs.shape[0], len(phrases))
        for p in range(len(phrases)):
            idx = torch.as_tensor(np.flatnonzero(owner[:num_tokens] == p))
            if len(idx):
                phrase_scores[:, p] = probs[:, idx].amax(dim=1)
        scores, labels = phrase_scores.max(dim=1)
        keep = scores > self.box_threshold
        if not bool(keep.any()):
            return []
        width, height = image.size
        boxes = box_convert(outputs.pred_boxes[0].float().cpu()[keep], "cxcywh", "xyxy")
        boxes = boxes * torch.tensor([width, height, width, height], dtype=torch.float32)
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, width)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, height)
        scores, labels = scores[keep], labels[keep]
        valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        boxes, scores, labels = boxes[valid], scores[valid], labels[valid]
        order = batched_nms(boxes, scores, labels, self.nms_iou)[: self.max_detections]
        return [
            Detection(
                label=phrases[int(labels[i])],
                score=float(scores[i]),
                box=tuple(float(v) for v in boxes[i].tolist()),  # type: ignore[arg-type]
            )
            for i in order
        ]
