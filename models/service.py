"""The inference service: one object owns the models, the device and the lock, and turns a
photo (plus a prompt in grounded mode) into an :class:`~models.result.AnalysisResult`.

Pipeline (after lang-segment-anything's detect -> segment split):
    everything mode: OmDet-Turbo run with the vocabulary in one pass -> its boxes as the first
                     prompts of MobileSAM's automatic mask generation (the grid only where
                     they found nothing) -> masks, named from the same detections
                     (``models.detect.vocabulary``, ``models.detect.naming``): a word or
                     "something?".
    grounded mode:   Grounding DINO boxes for the phrases -> MobileSAM box prompts -> masks.
    new words:       grounded mode on a photo already seen, OmDet-Turbo finding the words on
                     the photo's cached encoder features (``new_words=True``).
    point prompt:    a tapped point on the cached image embedding -> one mask, named as in
                     everything mode.
Where OmDet-Turbo's weights are missing, Grounding DINO names and finds new words instead
(slower; logged once). Which detector does what, and why, is measured in docs/speed.md.
Importing this module is cheap; torch, MobileSAM and transformers are imported by ``load``.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import ExifTags, Image, ImageOps

from models.config import ServiceConfig
from models.detect.naming import UNNAMED, Name, name_boxes
from models.detect.vocabulary import VOCABULARY
from models.errors import BadPromptError, WeightsMissingError, WeightsUnverifiedError
from models.prompts import MODES, prompt_text
from models.render.color_names import main_color, white_balance_gains
from models.render.palette import color_for
from models.result import UNSURE_LABEL, AnalysisResult, ObjectResult
from models.runtime.allocator import drop_gpu_library_pages, release_memory

if TYPE_CHECKING:
    from models.detect.detector import Detection, GroundingDinoDetector
    from models.detect.omdet import OmDetTurboDetector
    from models.segment.segmenter import MobileSamSegmenter

log = logging.getLogger(__name__)

# A tapped object is named from a crop of the photo around it: its box grown by a quarter of
# its size on each side (context for the detector), at least 160 px a side (product choices).
POINT_CROP_MARGIN = 0.25
POINT_CROP_MIN = 160
# Everything mode's box prompts from the vocabulary detections: boxes of one object overlap
# more than SAM's own box NMS threshold (0.7), and never more prompts than the 8x8 coarse grid
# they replace (a busy photo's boxes beyond that are left to the grid).
PROMPT_BOX_NMS = 0.7
PROMPT_BOXES = 64
Progress = Callable[[float, str], None]
_TURNED = range(2, 9)  # EXIF orientations that ImageOps.exif_transpose turns or flips


def _cpu_count() -> int:
    """CPUs this process may run on (cgroup/affinity aware where the OS tells)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class InferenceService:
    """Loads MobileSAM, Grounding DINO and OmDet-Turbo once per process and analyses photos.

    Thread-safe: loading and inference are serialised by one lock (the models keep per-call
    state and two concurrent runs would only compete for the same cores).
    """

    def __init__(self, config: ServiceConfig) -> None:
        """Remember ``config``; loads nothing (see :meth:`load`)."""
        self.config = config
        self.segmenter: MobileSamSegmenter | None = None
        self.detector: GroundingDinoDetector | None = None
        self.omdet: OmDetTurboDetector | None = None
        self.weights: dict[str, str] = {}
        self.vocabulary: tuple[str, ...] = VOCABULARY
        self.names_cache_size = 4
        self._names: OrderedDict[str, list[Detection]] = OrderedDict()
        self._detector_error: str | None = None
        self._omdet_error: str | None = None
        self._video_model: Any = None
        self._lock = threading.RLock()

    def load(self, modes: Iterable[str] = MODES) -> None:
        """Load the models ``modes`` need (everything: MobileSAM; grounded: MobileSAM and
        Grounding DINO), and OmDet-Turbo, which names objects and finds new words, if its
        weights resolve (else logged once: Grounding DINO does that work, slower). Idempotent
        and thread-safe; also sets torch's thread count (``config.num_threads`` or the CPUs
        available). On a CPU device, a load that loaded a model then drops the GPU
        libraries' pages from resident memory (``models.runtime.allocator.drop_gpu_library_pages``).

        Raises:
            ValueError: unknown mode.
            WeightsMissingError, WeightsUnverifiedError: see ``models.runtime.weights``.
            ModelError: a weights file exists but cannot be loaded.
        """
        modes = tuple(modes)
        for mode in modes:
            _check_mode(mode)
        skip_triton(self.config.device)
        with self._lock:
            loaded = False
            if self.segmenter is None:
                self._load_segmenter()
                loaded = True
            if "grounded" in modes and self.detector is None:
                self._load_detector()
                loaded = True
            if self.omdet is None and self._omdet_error is None:
                loaded = self._ensure_omdet() or loaded
            if loaded and self.config.device.startswith("cpu"):
                # The CUDA build's GPU libraries, read at import, are never used on a CPU.
                drop_gpu_library_pages()

    def _setup_torch(self) -> None:
        import torch

        threads = self.config.num_threads or _cpu_count()
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        log.info("torch %s on %s with %d threads", torch.__version__, self.config.device, threads)

    def _load_segmenter(self) -> None:
        from models.runtime.weights import resolve_mobile_sam
        from models.segment.segmenter import MobileSamSegmenter

        path, status = resolve_mobile_sam(self.config)
        self._setup_torch()
        self.segmenter = MobileSamSegmenter.from_checkpoint(
            path, device=self.config.device, precision=self.config.precision
        )
        self.weights["mobile_sam"] = status

    def _load_detector(self) -> None:
        from models.detect.detector import GroundingDinoDetector
        from models.runtime.weights import resolve_grounding_dino

        path, status = resolve_grounding_dino(self.config)
        self._setup_torch()
        self.detector = GroundingDinoDetector.from_pretrained(
            path, device=self.config.device, precision=self.config.precision
        )
        self.weights["grounding_dino"] = status

    def _load_omdet(self) -> None:
        from models.detect.omdet import OmDetTurboDetector
        from models.runtime.weights import resolve_omdet_turbo

        path, status = resolve_omdet_turbo(self.config)
        self._setup_torch()
        self.omdet = OmDetTurboDetector.from_pretrained(
            path, device=self.config.device, precision=self.config.precision
        )
        self.weights["omdet_turbo"] = status

    def analyze(
        self,
        image: Image.Image,
        mode: str,
        phrases: Sequence[str] | None = None,
        *,
        key: str | None = None,
        progress: Progress | None = None,
        preview: Callable[[list[ObjectResult]], None] | None = None,
        new_words: bool = False,
    ) -> AnalysisResult:
        """Find, mask, colour and name the objects of a photo.

        Args:
            image: the photo (PIL; EXIF orientation is applied, then converted to RGB).
            mode: "everything" (phrases ignored) or "grounded" (phrases required).
            phrases: grounded mode's phrases as ``models.prompts.parse_prompt`` returns them,
                e.g. ``["cat", "ball"]`` (the text is parsed once, where it comes in).
            key: cache key of the photo (one picture each, e.g. "photo-12-9f86d081884c7d65";
                ``app.queue.database.photo_cache_key``): its image embedding, Grounding
                DINO backbone features, OmDet-Turbo encoder features and vocabulary
                detections are kept in small LRUs for later calls (re-prompts). None:
                computed for this call only.
            progress: called as progress(fraction 0-1, stage text) between stages.
            preview: everything mode only: called once with the objects as soon as their
                masks exist, before they are named (each "something?", not ``named``;
                colours as in the result), so a caller can show them meanwhile.
            new_words: grounded mode only: the phrases are new words asked about a photo
                already analysed ("Look for something else"), found by OmDet-Turbo on the
                photo's cached encoder features and masked on its cached image embedding;
                Grounding DINO finds them where OmDet-Turbo's weights are missing. False:
                find by name, with Grounding DINO.

        Returns:
            AnalysisResult at photo size (width/height after EXIF orientation); masks (H, W)
            (:class:`models.segment.mask.Mask`, each kept as its tight crop); boxes xyxy photo
            pixels. Everything: largest first, each a vocabulary word (``named``) or
            "something?"; grounded: phrase labels, highest score first.
            Everything mode without OmDet-Turbo's and Grounding DINO's weights still works;
            all its objects are then "something?" (logged as a warning).

        Raises:
            ValueError: unknown mode.
            BadPromptError: grounded mode without phrases.
            TypeError: ``phrases`` is a string (text is parsed by ``parse_prompt`` first).
            WeightsMissingError, WeightsUnverifiedError, ModelError: models not loadable.
        """
        _check_mode(mode)
        if isinstance(phrases, str):
            raise TypeError("phrases is a list of phrases: parse text with parse_prompt first")
        if mode == "grounded":
            if not phrases:
                raise BadPromptError('Please type what to look for, for example "cat, ball".')
            phrases = list(phrases)
        else:
            phrases = None
        report = progress or (lambda fraction, stage: None)
        photo = upright(image)
        timings: dict[str, float] = {}
        start = time.perf_counter()
        with self._lock:
            # Grounding DINO finds the phrases, unless they are new words OmDet-Turbo can find.
            grounding = mode == "grounded" and not (new_words and self._ensure_omdet())
            if self.segmenter is None or (grounding and self.detector is None):
                report(0.02, "loading models")
                self.load((mode,) if grounding else ("everything",))
                timings["load"] = time.perf_counter() - start
            import torch

            with torch.inference_mode():
                if phrases is None:
                    objects = self._everything(photo, key, report, timings, preview)
                else:
                    finder = self.detector if grounding else self.omdet
                    assert finder is not None
                    objects = self._grounded(photo, phrases, key, report, timings, finder)
            name_colors(photo, objects, timings)
            weights = self._weights_used()
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
            prompt=prompt_text(phrases) if phrases is not None else None,
            objects=objects,
            weights=weights,
            timings=timings,
        )

    def segment_point(
        self,
        image: Image.Image,
        point: tuple[float, float],
        *,
        key: str | None = None,
        progress: Progress | None = None,
    ) -> AnalysisResult:
        """The object under a tapped point, as a one-object result (tap to cut out).

        Uses the photo's cached image embedding (``key``) when there is one, so a tap on a
        photo already analysed costs only the prompt encoder and mask decoder. The mask is
        named like everything mode's: from the photo's vocabulary detections if everything mode
        cached them under ``key``, else from a vocabulary pass on a crop around the object.

        Args:
            image: the photo (PIL; EXIF orientation is applied, then RGB) as analysed before.
            point: (x, y) in pixels of the upright photo.
            key: cache key of the photo, as for :meth:`analyze`.
            progress: called as progress(fraction 0-1, stage text).

        Returns:
            AnalysisResult (mode "point", prompt None) with exactly one object: mask (H, W)
            at photo size, its tight box, score = SAM's predicted IoU, label a vocabulary
            word (``named``) or "something?". ``timings`` has "mask" (to the mask) and "name".

        Raises:
            BadPromptError: the point is not a pair of finite numbers inside the photo.
            WeightsMissingError, WeightsUnverifiedError, ModelError: MobileSAM not loadable.
        """
        photo = upright(image)
        x, y = _check_point(point, photo.size)
        report = progress or (lambda fraction, stage: None)
        timings: dict[str, float] = {}
        start = time.perf_counter()
        with self._lock:
            if self.segmenter is None:
                report(0.02, "loading models")
                self.load(("everything",))
                timings["load"] = time.perf_counter() - start
            import torch

            report(0.1, "cutting out")
            t0 = time.perf_counter()
            with torch.inference_mode():
                mask, score = self.segmenter.segment_point(photo, (x, y), key=key)
                box = mask.box
                timings["mask"] = time.perf_counter() - t0
                release_memory()
                report(0.5, "finding its name")
                t0 = time.perf_counter()
                name = self._point_name(photo, box, key, timings)
                timings["name"] = time.perf_counter() - t0
            weights = self._weights_used()
        timings["total"] = time.perf_counter() - start
        report(1.0, "done")
        obj = ObjectResult(
            label=name.label, score=score, box=box, mask=mask, area=mask.area,
            color=color_for(0), named=name.named,
        )  # fmt: skip
        name_colors(photo, [obj], timings)
        log.info(
            "point (%.0f, %.0f) on %dx%d photo (key=%s): %r in %.2f s %s", x, y, photo.width,
            photo.height, key, name.label, timings["total"],
            {k: round(v, 3) for k, v in timings.items()},
        )  # fmt: skip
        return AnalysisResult(
            width=photo.width, height=photo.height, mode="point", prompt=None, objects=[obj],
            weights=weights, timings=timings,
        )  # fmt: skip

    def embedding_file(self, image: Image.Image, *, key: str | None = None) -> bytes:
        """The photo's MobileSAM image embedding as the page fetches it to decode taps
        (``models.segment.onnx_decoder.embedding_file``: (1, 256, 64, 64) float16, 2 MiB),
        from the cache when ``key`` was just analysed (else the encoder runs, ~1 s).

        Raises:
            WeightsMissingError, WeightsUnverifiedError, ModelError: MobileSAM not loadable.
        """
        from models.segment.onnx_decoder import embedding_file

        photo = upright(image)
        with self._lock:
            if self.segmenter is None:
                self.load(("everything",))
            return embedding_file(self.segmenter.embed(photo, key).features)

    def video_model(self) -> Any:
        """The video tracking model (``models.video.sam2.load_video_model``: SAM 2.1
        hiera-tiny at ``config.video_work_size``), loaded on first use and kept; its weights'
        provenance goes in ``weights["sam2_video"]``.

        Raises:
            WeightsMissingError, WeightsUnverifiedError, ModelError: not loadable.
        """
        with self._lock:
            if self._video_model is None:
                from models.video.sam2 import load_video_model

                skip_triton(self.config.device)
                self._setup_torch()
                self._video_model, self.weights["sam2_video"] = load_video_model(self.config)
            return self._video_model

    def name_masks(
        self, image: Image.Image, boxes: Sequence[tuple[float, float, float, float]]
    ) -> list[Name]:
        """Names of objects given by their tight boxes (xyxy px of ``image``) as everything
        mode names its masks: the vocabulary detections on the whole picture (OmDet-Turbo's,
        else Grounding DINO's; ``models.detect.naming``); all "something?" when neither can
        be loaded."""
        with self._lock:
            import torch

            with torch.inference_mode():
                return self._names_for(upright(image), boxes, None, lambda f, s: None, {})

    def cached_keys(self) -> set[str]:
        """The photo keys (as given to :meth:`analyze`) that anything is cached for: image
        embeddings, Grounding DINO backbone features, OmDet-Turbo encoder features,
        vocabulary detections."""
        with self._lock:
            keys = {cached.rsplit("@", 1)[0] for cached in self._names}
            for model in (self.segmenter, self.detector, self.omdet):
                if model is not None:
                    keys |= model.cached_keys()
            return keys

    def forget(self, key: str) -> None:
        """Drop everything cached for ``key`` (image embedding, detector features, names)."""
        with self._lock:
            for model in (self.segmenter, self.detector, self.omdet):
                if model is not None:
                    model.forget(key)
            for cached in [k for k in self._names if k.startswith(f"{key}@")]:
                del self._names[cached]

    def _everything(
        self,
        photo: Image.Image,
        key: str | None,
        report: Progress,
        timings: dict[str, float],
        preview: Callable[[list[ObjectResult]], None] | None = None,
    ) -> list[ObjectResult]:
        """Everything mode's objects. With OmDet-Turbo, its vocabulary pass comes first and
        its boxes are the first prompts (:func:`prompt_boxes`; the grid then goes only where
        they found nothing), then its detections name the masks; without it the masks come
        first and Grounding DINO's slower pass names them after the preview."""
        assert self.segmenter is not None
        report(0.1, "looking at the photo")
        t0 = time.perf_counter()
        embedding = self.segmenter.embed(photo, key)
        timings["embed"] = time.perf_counter() - t0
        detections: list[Detection] | None = None
        if self._ensure_omdet():
            report(0.2, "finding what is in it")
            t0 = time.perf_counter()
            detections = self._vocabulary_detections(photo, key, timings)
            timings["names"] = time.perf_counter() - t0
        report(0.3, "finding every object")
        t0 = time.perf_counter()
        boxes = prompt_boxes(detections) if detections else None
        masks = self.segmenter.everything(photo, embedding=embedding, boxes=boxes)
        timings["masks"] = time.perf_counter() - t0
        release_memory()  # the decoder's freed candidates
        if preview is not None and masks:
            t0 = time.perf_counter()
            preview([
                ObjectResult(label=UNSURE_LABEL, score=m.score, box=m.box, mask=m.mask,
                             area=m.area, color=color_for(i), named=False)
                for i, m in enumerate(masks)
            ])  # fmt: skip
            timings["preview"] = time.perf_counter() - t0
        report(0.6, "finding their names")
        t0 = time.perf_counter()
        if detections is not None:
            names = name_boxes([m.box for m in masks], detections) if masks else []
        else:
            names = self._names_for(photo, [m.box for m in masks], key, report, timings)
        timings["names"] = timings.get("names", 0.0) + time.perf_counter() - t0
        return [
            ObjectResult(
                label=name.label,
                score=m.score,
                box=m.box,
                mask=m.mask,
                area=m.area,
                color=color_for(i),
                named=name.named,
            )
            for i, (m, name) in enumerate(zip(masks, names, strict=True))
        ]

    def _names_for(
        self,
        photo: Image.Image,
        boxes: Sequence[tuple[float, float, float, float]],
        key: str | None,
        report: Progress,
        timings: dict[str, float],
    ) -> list[Name]:
        """Names of masks (given by their tight boxes) from the photo's vocabulary detections;
        all "something?" when neither OmDet-Turbo nor Grounding DINO can be loaded."""
        if not boxes:
            return []
        detections = self._vocabulary_detections(photo, key, timings)
        if detections is None:
            return [UNNAMED] * len(boxes)
        return name_boxes(boxes, detections)

    def _point_name(
        self,
        photo: Image.Image,
        box: tuple[float, float, float, float],
        key: str | None,
        timings: dict[str, float],
    ) -> Name:
        """Name of one tapped object (tight ``box``, photo px): from the photo's cached
        vocabulary detections if everything mode made them, else from a vocabulary pass on a
        crop around the object (the box grown by ``POINT_CROP_MARGIN`` on each side, at least
        ``POINT_CROP_MIN`` px), which costs a fraction of a whole-photo pass."""
        if box[2] <= box[0] or box[3] <= box[1]:
            return UNNAMED
        cache_key = None if key is None else f"{key}@{photo.width}x{photo.height}"
        if cache_key is not None and cache_key in self._names:
            self._names.move_to_end(cache_key)
            return name_boxes([box], self._names[cache_key])[0]
        namer = self._namer()
        if namer is None:
            return UNNAMED
        x0, y0, x1, y1 = box
        grow_x = max((x1 - x0) * POINT_CROP_MARGIN, (POINT_CROP_MIN - (x1 - x0)) / 2, 0.0)
        grow_y = max((y1 - y0) * POINT_CROP_MARGIN, (POINT_CROP_MIN - (y1 - y0)) / 2, 0.0)
        left, top = max(0, int(x0 - grow_x)), max(0, int(y0 - grow_y))
        right = min(photo.width, int(np.ceil(x1 + grow_x)))
        bottom = min(photo.height, int(np.ceil(y1 + grow_y)))
        t0 = time.perf_counter()
        found = namer.detect_vocabulary(photo.crop((left, top, right, bottom)), self.vocabulary)
        timings["detect"] = time.perf_counter() - t0
        shifted = [
            (d.label, d.score, (d.box[0] + left, d.box[1] + top, d.box[2] + left, d.box[3] + top))
            for d in found
        ]
        return name_boxes([box], shifted)[0]

    def _vocabulary_detections(
        self, photo: Image.Image, key: str | None, timings: dict[str, float]
    ) -> list[Detection] | None:
        """The detections of the whole vocabulary on ``photo`` (:meth:`_namer`'s), cached per
        ``key`` (LRU of ``names_cache_size``); None if no detector can be loaded."""
        cache_key = None if key is None else f"{key}@{photo.width}x{photo.height}"
        if cache_key is not None and cache_key in self._names:
            self._names.move_to_end(cache_key)
            return self._names[cache_key]
        namer = self._namer()
        if namer is None:
            return None
        t0 = time.perf_counter()
        detections = namer.detect_vocabulary(photo, self.vocabulary, key=key)
        timings["detect"] = time.perf_counter() - t0
        if cache_key is not None and self.names_cache_size > 0:
            self._names[cache_key] = detections
            while len(self._names) > self.names_cache_size:
                self._names.popitem(last=False)
        return detections

    def _namer(self) -> OmDetTurboDetector | GroundingDinoDetector | None:
        """The detector whose vocabulary pass names objects: OmDet-Turbo (one pass over the
        whole vocabulary), else Grounding DINO (a pass per 256-token caption), each loaded
        if its weights resolve; None when neither can be (objects stay "something?")."""
        if self._ensure_omdet():
            return self.omdet
        return self.detector if self._ensure_detector() else None

    def _ensure_omdet(self) -> bool:
        """Load OmDet-Turbo if possible; False (once logged) if its weights are missing or
        refused, so naming and new words fall back on Grounding DINO."""
        if self.omdet is not None:
            return True
        if self._omdet_error is not None:
            return False
        try:
            self._load_omdet()
        except (WeightsMissingError, WeightsUnverifiedError) as exc:
            self._omdet_error = str(exc)
            log.warning("names and new words will come from Grounding DINO, slower: %s", exc)
            return False
        return True

    def _weights_used(self) -> dict[str, str]:
        """Each loaded model's weights status ("official" / "unverified"), as a result
        reports them: MobileSAM always; Grounding DINO and OmDet-Turbo once loaded."""
        return {name: self.weights[name] for name in ("mobile_sam", "grounding_dino",
                                                      "omdet_turbo") if name in self.weights}

    def _ensure_detector(self) -> bool:
        """Load Grounding DINO for naming if possible; False (once logged) if its weights are
        missing or refused, so everything mode still works, unnamed."""
        if self.detector is not None:
            return True
        if self._detector_error is not None:
            return False
        try:
            self._load_detector()
        except (WeightsMissingError, WeightsUnverifiedError) as exc:
            self._detector_error = str(exc)
            log.warning("objects will not be named: %s", exc)
            return False
        return True

    def _grounded(
        self,
        photo: Image.Image,
        phrases: list[str],
        key: str | None,
        report: Progress,
        timings: dict[str, float],
        finder: OmDetTurboDetector | GroundingDinoDetector,
    ) -> list[ObjectResult]:
        """``finder``'s boxes for ``phrases`` (photo pixels), then MobileSAM's masks of them."""
        assert self.segmenter is not None
        report(0.1, "looking for " + ", ".join(phrases))
        t0 = time.perf_counter()
        detections = finder.detect(photo, phrases, key=key)
        timings["detect"] = time.perf_counter() - t0
        if not detections:
            return []
        release_memory()  # the detector's freed activations, before the image encoder's
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
                    area=mask.area,
                    color=color_for(i),
                )
            )
        objects.sort(key=lambda o: o.score, reverse=True)
        return objects


def prompt_boxes(detections: Sequence[Detection], *, limit: int = PROMPT_BOXES,
                 iou: float = PROMPT_BOX_NMS) -> np.ndarray:
    """Everything mode's object-aware box prompts from vocabulary detections: their boxes,
    highest score first, one per object (class-agnostic NMS at ``iou``: one object found as
    two words is asked once), at most ``limit``.

    Args:
        detections: (label, score, box) with boxes xyxy photo pixels.
        limit: most boxes kept (``PROMPT_BOXES``).
        iou: boxes overlapping a better one by more than this are dropped.

    Returns:
        (N, 4) float32 xyxy photo pixels, N <= ``limit``.
    """
    import torch
    from torchvision.ops import nms

    if not detections:
        return np.zeros((0, 4), dtype=np.float32)
    boxes = torch.tensor([d.box for d in detections], dtype=torch.float32)
    scores = torch.tensor([d.score for d in detections], dtype=torch.float32)
    return boxes[nms(boxes, scores, iou)[:limit]].numpy()


def name_colors(photo: Image.Image, objects: Sequence[ObjectResult],
                timings: dict[str, float] | None = None) -> None:
    """Set each object's ``color_name`` to its main colour in ``photo`` (a basic colour term
    or None; ``models.render.color_names.main_color``, one white balance for the whole photo).
    Records the seconds taken as ``timings["colors"]``."""
    if not objects:
        return
    start = time.perf_counter()
    photo = photo if photo.mode == "RGB" else photo.convert("RGB")
    gains = white_balance_gains(photo)
    for obj in objects:
        found = main_color(photo, obj.mask, gains)
        obj.color_name = found.term if found else None
    if timings is not None:
        timings["colors"] = time.perf_counter() - start


def upright(image: Image.Image) -> Image.Image:
    """The photo with EXIF orientation applied, in RGB: ``image`` itself when it is an RGB
    image without a rotating/flipping EXIF orientation (``ImageOps.exif_transpose`` would
    copy it: 36 MB at 12 megapixels, held for the whole analysis), else a new image."""
    image.load()
    if image.mode == "RGB" and image.getexif().get(ExifTags.Base.Orientation, 1) not in _TURNED:
        return image
    photo = ImageOps.exif_transpose(image)
    return photo if photo.mode == "RGB" else photo.convert("RGB")


def skip_triton(device: str) -> bool:
    """On a CPU device, make ``import triton`` fail in this process (``sys.modules["triton"]
    = None``), unless something imported it already.

    Triton compiles GPU kernels; this service runs eager PyTorch and never uses it. But
    PyPI's torch wheel installs it, and torchvision imports ``torch._dynamo``, which imports
    triton when it is installed and maps its native library: 75 MB of the worker's resident
    memory, measured on this machine (``import`` of the models: 718 -> 643 MB). Without
    triton, PyTorch reports it unavailable (``torch.utils._triton.has_triton_package``).

    Args:
        device: the models' torch device string ("cpu", "cuda", "cuda:1").

    Returns:
        True when this call kept triton out; False when it left things alone (a GPU device,
        or triton already imported or already kept out).
    """
    if not device.startswith("cpu") or "triton" in sys.modules:
        return False
    sys.modules["triton"] = None  # type: ignore[assignment]
    return True


def _check_point(point: object, size: tuple[int, int]) -> tuple[float, float]:
    """(x, y) as floats inside a photo of ``size`` (W, H); else BadPromptError."""
    try:
        x, y = (float(v) for v in point)  # type: ignore[attr-defined]
    except (TypeError, ValueError) as exc:
        raise BadPromptError("The tap did not say where on the photo it was.") from exc
    width, height = size
    if not (np.isfinite(x) and np.isfinite(y) and 0 <= x < width and 0 <= y < height):
        raise BadPromptError("The tap was outside the photo.")
    return x, y


def _check_mode(mode: str) -> None:
    """Raise ValueError unless ``mode`` is "everything" or "grounded"."""
    if mode not in MODES:
        raise ValueError(f"mode must be 'everything' or 'grounded', got {mode!r}")
