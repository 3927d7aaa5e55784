"""The inference service: one object owns the models, the device and the lock, and turns a
photo (plus a prompt in grounded mode) into an :class:`~models.result.AnalysisResult`.

Pipeline (after lang-segment-anything's detect -> segment split):
    everything mode: MobileSAM automatic mask generation -> "object 1", "object 2", ...
    grounded mode:   Grounding DINO boxes for the phrases -> MobileSAM box prompts -> masks.
Importing this module is cheap; torch, MobileSAM and transformers are imported by ``load``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps

from models.config import ServiceConfig
from models.errors import BadPromptError
from models.palette import color_for
from models.prompts import parse_prompt
from models.result import AnalysisResult, ObjectResult

if TYPE_CHECKING:
    from models.detector import GroundingDinoDetector
    from models.segmenter import MobileSamSegmenter

log = logging.getLogger(__name__)

MODES = ("everything", "grounded")
Progress = Callable[[float, str], None]


def _cpu_count() -> int:
    """CPUs this process may run on (cgroup/affinity aware where the OS tells)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class InferenceService:
    """Loads MobileSAM and Grounding DINO once per process and analyses photos.

    Thread-safe: loading and inference are serialised by one lock (the models keep per-call
    state and two concurrent runs would only compete for the same cores).
    """

    def __init__(self, config: ServiceConfig) -> None:
        """Remember ``config``; loads nothing (see :meth:`load`)."""
        self.config = config
        self.segmenter: MobileSamSegmenter | None = None
        self.detector: GroundingDinoDetector | None = None
        self.weights: dict[str, str] = {}
        self._lock = threading.RLock()

    def load(self, modes: Iterable[str] = MODES) -> None:
        """Load the models ``modes`` need (everything: MobileSAM; grounded: both). Idempotent
        and thread-safe; also sets torch's thread count (``config.num_threads`` or the CPUs
        available).

        Raises:
            ValueError: unknown mode.
            WeightsMissingError, WeightsUnverifiedError: see ``models.weights``.
            ModelError: a weights file exists but cannot be loaded.
        """
        modes = tuple(modes)
        for mode in modes:
            _check_mode(mode)
        with self._lock:
            if self.segmenter is None:
                self._load_segmenter()
            if "grounded" in modes and self.detector is None:
                self._load_detector()

    def _setup_torch(self) -> None:
        import torch

        threads = self.config.num_threads or _cpu_count()
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        log.info("torch %s on %s with %d threads", torch.__version__, self.config.device, threads)

    def _load_segmenter(self) -> None:
        from models.segmenter import MobileSamSegmenter
        from models.weights import resolve_mobile_sam

        path, status = resolve_mobile_sam(self.config)
        self._setup_torch()
        self.segmenter = MobileSamSegmenter.from_checkpoint(path, device=self.config.device)
        self.weights["mobile_sam"] = status

    def _load_detector(self) -> None:
        from models.detector import GroundingDinoDetector
        from models.weights import resolve_grounding_dino

        path, status = resolve_grounding_dino(self.config)
        self._setup_torch()
        self.detector = GroundingDinoDetector.from_pretrained(path, device=self.config.device)
        self.weights["grounding_dino"] = status

    def analyze(
        self,
        image: Image.Image,
        mode: str,
        prompt: str | None = None,
        *,
        key: str | None = None,
        progress: Progress | None = None,
    ) -> AnalysisResult:
        """Find, mask, colour and name the objects of a photo.

        Args:
            image: the photo (PIL; EXIF orientation is applied, then converted to RGB).
            mode: "everything" (prompt ignored) or "grounded" (prompt required).
            prompt: e.g. "cat, ball" (see ``models.prompts.parse_prompt``).
            key: cache key of the photo's image embedding (e.g. "photo-12"); kept in the
                segmenter's LRU for later calls. None: computed once, for this call only.
            progress: called as progress(fraction 0-1, stage text) between stages.

        Returns:
            AnalysisResult at photo size (width/height after EXIF orientation); masks (H, W)
            bool; boxes xyxy photo pixels. Everything: largest first, "object N"; grounded:
            phrase labels, highest score first.

        Raises:
            ValueError: unknown mode.
            BadPromptError: grounded mode with a missing or bad prompt.
            WeightsMissingError, WeightsUnverifiedError, ModelError: models not loadable.
        """
        _check_mode(mode)
        phrases = None
        if mode == "grounded":
            if prompt is None:
                raise BadPromptError('Please type what to look for, for example "cat, ball".')
            phrases = parse_prompt(prompt)
        report = progress or (lambda fraction, stage: None)
        photo = ImageOps.exif_transpose(image)
        if photo.mode != "RGB":
            photo = photo.convert("RGB")
        timings: dict[str, float] = {}
        start = time.perf_counter()
        with self._lock:
            if self.segmenter is None or (mode == "grounded" and self.detector is None):
                report(0.02, "loading models")
                self.load((mode,))
                timings["load"] = time.perf_counter() - start
            import torch

            with torch.inference_mode():
                if phrases is None:
                    objects = self._everything(photo, key, report, timings)
                else:
                    objects = self._grounded(photo, phrases, key, report, timings)
            weights = {"mobile_sam": self.weights["mobile_sam"]}
            if mode == "grounded":
                weights["grounding_dino"] = self.weights["grounding_dino"]
        timings["total"] = time.perf_counter() - start
        report(1.0, "done")
        log.info(
            "analysed %dx%d photo (%s, key=%s): %d objects in %.2f s %s",
            photo.width, photo.height, mode, key, len(objects), timings["total"],
            {k: round(v, 2) for k, v in timings.items()},
        )  # fmt: skip
        return AnalysisResult(
            width=photo.width,
            height=photo.height,
            mode=mode,
            prompt=prompt if mode == "grounded" else None,
            objects=objects,
            weights=weights,
            timings=timings,
        )

    def _everything(
        self, photo: Image.Image, key: str | None, report: Progress, timings: dict[str, float]
    ) -> list[ObjectResult]:
        assert self.segmenter is not None
        report(0.1, "looking at the photo")
        t0 = time.perf_counter()
        embedding = self.segmenter.embed(photo, key)
        timings["embed"] = time.perf_counter() - t0
        report(0.3, "finding every object")
        t0 = time.perf_counter()
        masks = self.segmenter.everything(photo, embedding=embedding)
        timings["masks"] = time.perf_counter() - t0
        return [
            ObjectResult(
                label=f"object {i + 1}",
                score=m.score,
                box=m.box,
                mask=m.mask,
                area=m.area,
                color=color_for(i),
            )
            for i, m in enumerate(masks)
        ]

    def _grounded(
        self,
        photo: Image.Image,
        phrases: list[str],
        key: str | None,
        report: Progress,
        timings: dict[str, float],
    ) -> list[ObjectResult]:
        assert self.segmenter is not None and self.detector is not None
        report(0.1, "looking for " + ", ".join(phrases))
        t0 = time.perf_counter()
        detections = self.detector.detect(photo, phrases)
        timings["detect"] = time.perf_counter() - t0
        if not detections:
            return []
        report(0.6, "outlining what was found")
        t0 = time.perf_counter()
        embedding = self.segmenter.embed(photo, key)
        timings["embed"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        boxes = np.array([d.box for d in detections], dtype=np.float32)
        masks, _ = self.segmenter.segment_boxes(photo, boxes, embedding=embedding)
        timings["masks"] = time.perf_counter() - t0
        objects = []
        for i, (detection, mask) in enumerate(zip(detections, masks, strict=True)):
            objects.append(
                ObjectResult(
                    label=detection.label,
                    score=detection.score,
                    box=detection.box,
                    mask=mask,
                    area=int(mask.sum()),
                    color=color_for(i),
                )
            )
        objects.sort(key=lambda o: o.score, reverse=True)
        return objects


def _check_mode(mode: str) -> None:
    """Raise ValueError unless ``mode`` is "everything" or "grounded"."""
    if mode not in MODES:
        raise ValueError(f"mode must be 'everything' or 'grounded', got {mode!r}")
