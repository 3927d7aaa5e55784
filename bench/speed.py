"""Speed benchmark of the inference service against the reference settings.

    python -m bench.speed [--quick] [--threads N] [--photos DIR] [--no-reference]

Uses the real weights when both resolve (``MODEL_DIR``, ``MOBILE_SAM_CHECKPOINT``,
``GROUNDING_DINO_MODEL``, as the worker does), else builds the full-size architectures
(MobileSAM vit_t; Grounding DINO tiny: Swin-T + BERT-base, 900 queries) with random weights
and says so. Times every stage (load, encoder, decoder, everything mode, find by name, a
tap, new words), ours and the reference setting, in one run
on the photos of ``../shared/photos`` (medians over photos and repeats), prints a table and,
last, one JSON line (times in seconds; ``peak_rss_mb`` and the other ``*_rss_mb`` values in
MiB, 2**20 bytes, the unit the table also prints beside GB = 10**9 bytes). Not run in CI;
``tests/models/test_bench.py`` smoke-tests it on the small random fixtures.

Reference settings: ``SamPredictor`` (``set_image``, ``predict``), ``SamAutomaticMaskGenerator``
with its defaults (32 points per side), Grounding DINO through its processor's default size
(shortest edge 800, longest 1333) followed by ``SamPredictor.predict_torch`` on its boxes.
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from models.config import ServiceConfig

log = logging.getLogger(__name__)

PHOTO_NAMES = ("dog.jpg", "bears.jpg", "car-and-bicycle.jpg", "letters.jpg")
PROMPTS = {
    "dog.jpg": "dog, ball, grass",
    "bears.jpg": "teddy bear, bear, table",
    "car-and-bicycle.jpg": "car, bicycle, person",
    "letters.jpg": "letter, table, toy",
}
MAX_DETECTIONS = 20  # models.detector.MAX_DETECTIONS, applied to the reference too
TARGET_MEGAPIXELS = 12.0  # the speed targets are for a 12-megapixel phone photo
RECALL_MIN_AREA = 0.01  # reference masks of at least 1% of the image ...
RECALL_IOU = 0.8  # ... need one of ours with mask IoU >= 0.8 ...
RECALL_TARGET = 0.9  # ... in at least 90% of cases


def default_photos_dir() -> Path:
    """``<repo>/../shared/photos``, as ``tests/conftest.py`` finds the real photos."""
    return Path(__file__).resolve().parents[2] / "shared" / "photos"


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB: ``VmHWM`` of
    ``/proc/self/status`` (this process's own memory, from its exec), else ``getrusage``'s
    ru_maxrss (which Linux carries over from the parent across fork and exec)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def upscale_to_megapixels(image: Image.Image, megapixels: float) -> Image.Image:
    """The photo resized (Lanczos) to about ``megapixels`` million pixels, same aspect; the
    shared photos are 3-4 MP and the speed targets are for a 12-MP phone photo."""
    scale = (megapixels * 1e6 / (image.width * image.height)) ** 0.5
    size = (round(image.width * scale), round(image.height * scale))
    return image.resize(size, Image.Resampling.LANCZOS)


@dataclass
class Stage:
    """Timings (seconds) of one stage, ours or the reference's."""

    name: str
    ours: list[float] = field(default_factory=list)
    reference: list[float] = field(default_factory=list)
    note: str = ""

    @staticmethod
    def median(values: Sequence[float]) -> float | None:
        """Median of ``values``, None when empty."""
        return statistics.median(values) if values else None


def encode_upload(image: Image.Image) -> bytes:
    """JPEG bytes of an RGB image as ``app.imaging.normalise_upload`` stores an upload
    (quality 92)."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def decode(data: bytes) -> Image.Image:
    """The decoded RGB image of encoded bytes (Pillow, fully loaded)."""
    image = Image.open(io.BytesIO(data))
    image.load()
    return image.convert("RGB")


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[float, Any]:
    """(seconds, result) of one call ``fn(*args, **kwargs)``."""
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result


# ---------------------------------------------------------------------- weights


def build_random_weights(directory: Path) -> tuple[Path, Path]:
    """Full-size MobileSAM vit_t and Grounding DINO tiny (Swin-T, BERT-base, 900 queries) with
    random weights (``torch.manual_seed(0)``) in ``directory``; returns (checkpoint, model dir).

    The tokenizer is BERT-style with bert-base-uncased's size and special-token ids, holding
    the vocabulary's words whole (bert-base-uncased splits a few rare ones into word pieces,
    so real captions are a few tokens longer).
    """
    import torch
    from transformers import (
        BertTokenizerFast,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
    )

    from models.segmenter import import_mobile_sam
    from models.vocabulary import VOCABULARY

    checkpoint = directory / "mobile_sam.pt"
    torch.manual_seed(0)
    torch.save(import_mobile_sam().sam_model_registry["vit_t"]().state_dict(), checkpoint)

    words = sorted({w for phrase in (*VOCABULARY, *PROMPTS.values()) for w in
                    phrase.replace(",", " ").split()})  # fmt: skip
    fixed = {0: "[PAD]", 100: "[UNK]", 101: "[CLS]", 102: "[SEP]", 103: "[MASK]", 1012: ".",
             1029: "?", 1010: ","}  # fmt: skip
    tokens = [fixed.get(i, f"[unused{i}]") for i in range(1999)] + words
    tokens += [f"[unused{i}]" for i in range(len(tokens), 30522)]
    vocab_dir = directory / "vocab"
    vocab_dir.mkdir()
    (vocab_dir / "vocab.txt").write_text("\n".join(tokens) + "\n")
    tokenizer = BertTokenizerFast.from_pretrained(str(vocab_dir), do_lower_case=True)
    model_dir = directory / "grounding-dino-tiny-random"
    torch.manual_seed(0)
    GroundingDinoForObjectDetection(GroundingDinoConfig()).save_pretrained(model_dir)
    GroundingDinoProcessor(
        image_processor=GroundingDinoImageProcessor(), tokenizer=tokenizer
    ).save_pretrained(model_dir)
    return checkpoint, model_dir


def real_config(environ: dict[str, str] | None = None) -> ServiceConfig | None:
    """The worker's config if both models' weights are on disk, else None."""
    from models.errors import ModelError
    from models.weights import resolve_grounding_dino, resolve_mobile_sam

    config = ServiceConfig.from_env(os.environ if environ is None else environ)
    try:
        resolve_mobile_sam(config)
        resolve_grounding_dino(config)
    except ModelError:
        return None
    return config


# ---------------------------------------------------------------------- stages


def run(
    service: Any,
    photos: dict[str, Image.Image],
    *,
    repeats: int,
    reference: bool,
    reference_photos: int,
    megapixels: float,
    reference_points: int = 32,
) -> tuple[list[Stage], dict[str, Any]]:
    """Time every stage on ``photos`` with a loaded ``InferenceService``.

    Returns:
        (stages, extra): the table's rows and the values of the JSON line that are not
        medians of a stage (peak RSS, recall check, mask counts).
    """
    import torch

    from models.allocator import release_memory
    from models.overlay import encode_jpeg, encode_png, render_overlay, render_preview

    segmenter, detector = service.segmenter, service.detector
    big = {name: upscale_to_megapixels(p, megapixels) for name, p in photos.items()}
    stored = {name: encode_upload(p) for name, p in big.items()}  # as app.imaging stores uploads
    stages = {name: Stage(name) for name in (
        "encoder", "decoder_point_lowres", "decoder_point", "decoder_5_boxes", "reprompt_point",
        "reprompt_words", "detector", "detector_vocabulary", "grounded", "grounded_per_phrase",
        "everything_masks",
        "everything_names", "everything", "everything_unfiltered", "everything_preview",
        "render_jpeg",
    )}  # fmt: skip
    extra: dict[str, Any] = {}
    shown: list[float] = []  # seconds from upload to the preview of each everything job

    def end_to_end(data: bytes, mode: str, prompt: str | None, key: str) -> Any:
        """What the worker does with an accepted upload: decode the stored JPEG, analyse
        (everything mode: with the worker's preview PNG of the masks, whose time from the
        start goes to ``shown``), draw the overlay and encode it as JPEG (``encode_jpeg``, as
        the worker stores it), and the objects' JSON (masks as RLE). Starts, as each worker
        job does, after the worker handed freed memory back (``release_memory`` between
        jobs), so the job pays its page faults."""
        release_memory()
        start = time.perf_counter()
        photo = decode(data)

        def preview(objects: list[Any]) -> None:
            encode_png(render_preview(photo, objects))
            shown.append(time.perf_counter() - start)

        result = service.analyze(photo, mode, prompt, key=key,
                                 preview=preview if mode == "everything" else None)  # fmt: skip
        overlay = encode_jpeg(render_overlay(photo, result.objects, scores=mode == "grounded"))
        json.dumps(result.to_json(), separators=(",", ":"))
        return result, overlay

    from models.segmenter import import_mobile_sam

    predictor = import_mobile_sam().SamPredictor(segmenter.model)
    counter = 0
    for repeat in range(repeats):
        for name, photo in photos.items():
            counter += 1
            key = f"bench-{counter}"
            with torch.inference_mode():
                seconds, embedding = timed(segmenter.embed, photo)
                stages["encoder"].ours.append(seconds)
                centre = (photo.width / 2, photo.height / 2)
                scaled = np.array([centre], dtype=np.float32) * segmenter._scale(embedding)
                points = (torch.as_tensor(scaled)[None], torch.ones((1, 1), dtype=torch.int))
                stages["decoder_point_lowres"].ours.append(
                    timed(segmenter._decode, embedding, points=points, multimask=True)[0])
                stages["decoder_point"].ours.append(
                    timed(segmenter.segment_point, photo, centre, embedding=embedding)[0])
                stages["decoder_5_boxes"].ours.append(timed(
                    segmenter.segment_boxes, photo, _five_boxes(photo), embedding=embedding)[0])
            phrases = [s.strip() for s in PROMPTS.get(name, "dog, cat, ball").split(",")]
            stages["detector"].ours.append(timed(detector.detect, photo, phrases)[0])
            stages["detector_vocabulary"].ours.append(
                timed(detector.detect_vocabulary, photo, service.vocabulary)[0])
            if reference and repeat == 0:
                _reference_stages(service, predictor, name, photo, stages)
            # End to end on a 12-MP copy, cold caches (a new key): upload -> overlay JPEG.
            photo12 = big[name]
            seconds, _ = timed(end_to_end, stored[name], "grounded", PROMPTS.get(name, "dog"), key)
            stages["grounded"].ours.append(seconds)
            # The same with at most one box per phrase, as many as the words asked for: what
            # trained weights return for these prompts, where random weights fill the cap of
            # 20 boxes (each one more mask to decode and draw).
            cap = detector.max_detections
            detector.max_detections = len(phrases)
            try:
                seconds, _ = timed(end_to_end, stored[name], "grounded", PROMPTS.get(name, "dog"),
                                   key + "-per-phrase")  # fmt: skip
            finally:
                detector.max_detections = cap
            stages["grounded_per_phrase"].ours.append(seconds)
            service.forget(key + "-per-phrase")
            seconds, (result, _) = timed(end_to_end, stored[name], "everything", None,
                                         key + "-all")  # fmt: skip
            stages["everything"].ours.append(seconds)
            if shown:  # trained weights keep masks: the preview was made
                stages["everything_preview"].ours.append(shown.pop())
            stages["everything_masks"].ours.append(
                result.timings.get("embed", 0.0) + result.timings.get("masks", 0.0))
            stages["everything_names"].ours.append(result.timings.get("names", 0.0))
            stages["render_jpeg"].ours.append(timed(
                lambda p, r: encode_jpeg(render_overlay(p, r.objects, scores=False)),
                photo12, result)[0])  # fmt: skip
            extra.setdefault("everything_objects", []).append(len(result.objects))
            extra.setdefault("everything_named", []).append(sum(o.named for o in result.objects))
            if not result.objects:
                # Random weights: the quality filters keep no mask, so nothing after them
                # runs. With SAM's IoU and stability filters off they keep up to max_masks
                # (ragged) masks, which are upsampled, named by the vocabulary pass and drawn:
                # all of everything mode's work, on more and raggeder masks than trained
                # weights give.
                settings = segmenter.everything_settings
                segmenter.everything_settings = replace(
                    settings, pred_iou_thresh=0.0, stability_score_thresh=0.0)  # fmt: skip
                try:
                    seconds, (unfiltered, _) = timed(
                        end_to_end, stored[name], "everything", None, key + "-unfiltered")
                finally:
                    segmenter.everything_settings = settings
                service.forget(key + "-unfiltered")
                stages["everything_unfiltered"].ours.append(seconds)
                if shown:
                    stages["everything_preview"].ours.append(shown.pop())
                extra.setdefault("unfiltered_objects", []).append(len(unfiltered.objects))
                del unfiltered
            shown.clear()
            # Asking again about the same photo: a tap, then new words (each a worker job, so
            # after the worker's between-jobs release_memory).
            release_memory()
            tap = service.segment_point(
                photo12, (photo12.width / 3, photo12.height / 2), key=key + "-all")
            stages["reprompt_point"].ours.append(tap.timings["mask"])
            release_memory()
            words = service.analyze(photo12, "grounded", "cup, book", key=key + "-all")
            stages["reprompt_words"].ours.append(words.timings["total"])
            service.forget(key)
            service.forget(key + "-all")
            release_memory()  # as the worker does between jobs
    extra["peak_rss_mb"] = round(peak_rss_mb())
    if reference:
        _run_reference(service, photos, big, stages, extra, reference_photos, reference_points)
    return list(stages.values()), extra


def _five_boxes(photo: Image.Image) -> np.ndarray:
    """Five boxes (N, 4) xyxy photo pixels spread over the photo."""
    w, h = photo.width, photo.height
    return np.array([[w * a, h * b, w * (a + 0.3), h * (b + 0.4)] for a, b in
                     [(0.05, 0.05), (0.6, 0.1), (0.3, 0.3), (0.1, 0.55), (0.65, 0.55)]],
                    dtype=np.float32)  # fmt: skip


def _reference_stages(
    service: Any, predictor: Any, name: str, photo: Image.Image, stages: dict[str, Stage]
) -> None:
    """The reference's per-photo stages, run right after ours on the same photo (so both see
    the same load on a shared machine): SamPredictor and Grounding DINO at shortest edge 800."""
    import torch

    array = np.asarray(photo)
    stages["encoder"].reference.append(timed(predictor.set_image, array)[0])
    point = np.array([[photo.width / 2, photo.height / 2]])
    stages["decoder_point"].reference.append(
        timed(predictor.predict, point, np.array([1]), multimask_output=True)[0])
    boxes = predictor.transform.apply_boxes(_five_boxes(photo), array.shape[:2])
    with torch.inference_mode():
        stages["decoder_5_boxes"].reference.append(timed(
            predictor.predict_torch, None, None, boxes=torch.as_tensor(boxes),
            multimask_output=False)[0])  # fmt: skip
    phrases = [s.strip() for s in PROMPTS.get(name, "dog").split(",")]
    stages["detector"].reference.append(
        timed(_reference_detect, service, photo, phrases)[0])


def _run_reference(
    service: Any,
    photos: dict[str, Image.Image],
    big: dict[str, Image.Image],
    stages: dict[str, Stage],
    extra: dict[str, Any],
    reference_photos: int,
    reference_points: int,
) -> None:
    """Reference settings on the same weights; the everything-mode recall check."""
    import torch

    from models.overlay import encode_jpeg, render_overlay
    from models.result import ObjectResult
    from models.segmenter import import_mobile_sam

    mobile_sam = import_mobile_sam()
    sam = service.segmenter.model
    predictor = mobile_sam.SamPredictor(sam)

    def grounded_reference(data: bytes, prompt: str) -> bytes:
        photo = decode(data)
        phrases = [s.strip() for s in prompt.split(",")]
        found = _reference_detect(service, photo, phrases)
        array = np.asarray(photo)
        predictor.set_image(array)
        objects = []
        if found:
            boxes = torch.as_tensor(predictor.transform.apply_boxes(
                np.array([d[2] for d in found]), array.shape[:2]))  # fmt: skip
            masks, _, _ = predictor.predict_torch(None, None, boxes=boxes, multimask_output=False)
            for (label, score, box), mask in zip(found, masks[:, 0].numpy(), strict=True):
                objects.append(ObjectResult(label, score, box, mask, int(mask.sum()), (200, 0, 0)))
        return encode_jpeg(render_overlay(photo, objects))

    for name in list(photos)[:reference_photos]:
        stages["grounded"].reference.append(
            timed(grounded_reference, encode_upload(big[name]), PROMPTS.get(name, "dog"))[0])
    # Everything mode, SamAutomaticMaskGenerator defaults, and the recall check.
    recall_hits, recall_total = 0, 0
    for name in list(photos)[:reference_photos]:
        photo = photos[name]
        generator = mobile_sam.SamAutomaticMaskGenerator(sam, points_per_side=reference_points)
        with torch.inference_mode():
            seconds, records = timed(generator.generate, np.asarray(photo))
        stages["everything"].reference.append(seconds)
        ours = [np.asarray(m.mask) for m in service.segmenter.everything(photo)]
        min_area = RECALL_MIN_AREA * photo.width * photo.height
        for record in records:
            if record["area"] < min_area:
                continue
            recall_total += 1
            ref = record["segmentation"]
            best = max((_mask_iou(ref, m) for m in ours), default=0.0)
            recall_hits += best >= RECALL_IOU
        extra.setdefault("reference_masks", []).append(len(records))
    extra["recall_hits"], extra["recall_total"] = recall_hits, recall_total
    extra["peak_rss_with_reference_mb"] = round(peak_rss_mb())


def _reference_detect(service: Any, photo: Image.Image, phrases: list[str]) -> list[Any]:
    """Grounding DINO as its model card runs it: processor defaults (shortest edge 800,
    longest 1333) on the full photo, float32 (:func:`_reference_grounding_dino`),
    ``post_process_grounded_object_detection`` at 0.35; the 20 best boxes kept (as ours:
    random weights put hundreds above 0.35, and SAM's batched decoding of them at 12 MP needs
    ~50 MB each)."""
    import torch

    from models.weights import resolve_grounding_dino

    processor = service.detector.processor
    model = _reference_grounding_dino(str(resolve_grounding_dino(service.config)[0]))
    caption = ". ".join(phrases) + "."
    inputs = processor(images=photo, text=caption, return_tensors="pt")
    with torch.inference_mode():
        outputs = model(**inputs)
    results = processor.post_process_grounded_object_detection(
        outputs, inputs.input_ids, threshold=0.35, text_threshold=0.25,
        target_sizes=[(photo.height, photo.width)],
    )[0]  # fmt: skip
    found = [(str(label), float(score), tuple(box.tolist())) for label, score, box in
             zip(results["text_labels"], results["scores"], results["boxes"], strict=True)]
    return sorted(found, key=lambda d: d[1], reverse=True)[:MAX_DETECTIONS]


@functools.cache
def _reference_grounding_dino(path: str) -> Any:
    """transformers' ``GroundingDinoForObjectDetection`` loaded from ``path`` as it comes
    (float32 weights, eval mode), once per path: the service's detector stores its weights in
    bfloat16 where it runs under autocast (``models.precision.store_for_autocast``), so the
    float32 reference needs a copy of its own (file-mapped weights, ~660 MB at full size)."""
    from transformers import GroundingDinoForObjectDetection

    from models.detector import quiet_loading

    with quiet_loading():  # its "Loading weights" bar would cut into the table
        model = GroundingDinoForObjectDetection.from_pretrained(path, local_files_only=True)
    return model.eval()


def _mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two (H, W) bool masks of the same size."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


# ---------------------------------------------------------------------- report

TABLE_ROWS = [
    ("encoder", "MobileSAM image encoder (1024 long side)", "SamPredictor.set_image"),
    ("decoder_point_lowres", "  prompt enc + mask decoder, 1 point, low-res (decoder only)", ""),
    ("decoder_point", "  1 point, best of 3, upscaled to photo", "SamPredictor.predict"),
    ("decoder_5_boxes", "  5 boxes, upscaled to photo", "predict_torch, batched"),
    ("detector", "Grounding DINO, 3 phrases", "shortest edge 800"),
    ("detector_vocabulary", "Grounding DINO, whole vocabulary (names)", ""),
    ("grounded", "find by name, 12 MP, end to end (overlay JPEG)", "GD@800 + SamPredictor"),
    ("grounded_per_phrase", "  the same, one box per phrase (3 boxes)", ""),
    ("everything_masks", "everything mode: encoder + masks", ""),
    ("everything_names", "everything mode: naming (vocabulary)", ""),
    ("everything", "everything mode, 12 MP, end to end (overlay JPEG)", "AMG defaults, 32x32"),
    ("everything_unfiltered", "  filters off (random weights: masks kept, named, drawn)", ""),
    ("everything_preview", "    of which until the masks are shown (preview PNG)", ""),
    ("render_jpeg", "  of which overlay + JPEG, 12 MP", ""),
    ("reprompt_point", "asking again: a tap, to the mask (cached)", ""),
    ("reprompt_words", "asking again: new words (cached embedding)", ""),
]


def _fmt(value: float | None) -> str:
    return "-" if value is None else (f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s")


def report(stages: list[Stage], extra: dict[str, Any], header: dict[str, Any]) -> dict[str, Any]:
    """Print the table and return the JSON line's values."""
    by_name = {s.name: s for s in stages}
    print(f"weights: {header['weights']}" + (
        "  (RANDOM weights: full-size architectures, same FLOPs; masks are noise)"
        if header["weights"] == "random" else ""))  # fmt: skip
    print(f"torch threads: {header['threads']}   Grounding DINO and mask decoder in "
          f"{header.get('precision')}   load average before/after: "
          f"{header['load_before']} / {header['load_after']}   photos: {header['photos']}")
    print(f"{'stage':58} {'ours':>10} {'reference':>11}  reference setting")
    for key, label, setting in TABLE_ROWS:
        stage = by_name[key]
        ours, ref = Stage.median(stage.ours), Stage.median(stage.reference)
        n = f"n={len(stage.ours)}/{len(stage.reference)}"
        print(f"{label:58} {_fmt(ours):>10} {_fmt(ref):>11}  {setting} {n}")
    if "worker_peak_rss_mb" in extra:
        print(f"peak RSS of a worker process (both models; find by name, everything, tap on "
              f"each photo): {_mib(extra['worker_peak_rss_mb'])}")  # fmt: skip
    print(f"peak RSS of this benchmark process (ours + the reference's per-photo stages): "
          f"{_mib(extra['peak_rss_mb'])}"
          + (f" (with the reference runs: {_mib(extra['peak_rss_with_reference_mb'])})"
             if "peak_rss_with_reference_mb" in extra else ""))  # fmt: skip
    print(f"everything mode objects per photo: {extra.get('everything_objects')}, named: "
          f"{extra.get('everything_named')}")
    if extra.get("unfiltered_objects"):
        print(f"everything mode with the IoU and stability filters off, objects per photo: "
              f"{extra['unfiltered_objects']} (each upsampled, named and drawn)")
    recall = None
    if "recall_total" in extra:
        total, hits = extra["recall_total"], extra["recall_hits"]
        if total:
            recall = hits / total
            verdict = "met" if recall >= RECALL_TARGET else "NOT met"
            print(f"recall vs reference (masks >= 1% of the image, IoU >= 0.8): {hits}/{total}"
                  f" = {recall:.0%} ({verdict}; target 90%)")
        else:
            print(f"recall vs reference: not measurable - the reference found no mask >= 1% of"
                  f" the image (masks per photo: {extra.get('reference_masks')})"
                  + ("; random weights predict IoUs far below its 0.88 threshold"
                     if header["weights"] == "random" else ""))  # fmt: skip

    def med(key: str, which: str = "ours") -> float | None:
        value = Stage.median(getattr(by_name[key], which))
        return None if value is None else round(value, 3)

    # Naming runs only when everything mode keeps masks; random weights keep none, so the
    # vocabulary pass (timed on its own) is added to estimate a real photo's everything mode.
    estimate = None
    if not any(extra.get("everything_objects", [])):
        estimate = round((med("everything") or 0) + (med("detector_vocabulary") or 0), 3)
        print(f"everything mode kept no mask, so nothing was named; with the vocabulary pass a "
              f"photo with objects takes about {estimate:.2f} s (estimate)")  # fmt: skip

    return {
        "grounded_s": med("grounded"),
        "grounded_per_phrase_s": med("grounded_per_phrase"),
        "everything_s": med("everything"),
        "everything_masks_s": med("everything_masks"),
        "everything_names_s": med("everything_names"),
        "everything_with_names_estimate_s": estimate,
        "everything_unfiltered_s": med("everything_unfiltered"),
        "everything_preview_s": med("everything_preview"),
        "reprompt_s": med("reprompt_point"),
        "reprompt_words_s": med("reprompt_words"),
        "encoder_s": med("encoder"),
        "decoder_point_s": med("decoder_point"),
        "decoder_point_lowres_s": med("decoder_point_lowres"),
        "detector_s": med("detector"),
        "detector_vocabulary_s": med("detector_vocabulary"),
        "peak_rss_mb": extra.get("worker_peak_rss_mb", extra["peak_rss_mb"]),
        "bench_peak_rss_mb": extra["peak_rss_mb"],
        "everything_reference_s": med("everything", "reference"),
        "grounded_reference_s": med("grounded", "reference"),
        "encoder_reference_s": med("encoder", "reference"),
        "detector_reference_s": med("detector", "reference"),
        "recall": None if recall is None else round(recall, 3),
        "recall_masks": extra.get("recall_total"),
        "weights": header["weights"],
        "precision": header.get("precision"),
        "threads": header["threads"],
        "load": [header["load_before"], header["load_after"]],
    }


def _mib(mib: float) -> str:
    """A peak RSS in MiB as printed: "1,850 MiB (1.94 GB)" (GB = 10**9 bytes)."""
    return f"{mib:,.0f} MiB ({mib * 2**20 / 1e9:.2f} GB)"


def worker_peak_rss(photos_dir: Path, threads: int, megapixels: float) -> int:
    """Peak RSS (MiB) of a process doing what the worker does, and nothing else: both models
    loaded from the environment's config (``ServiceConfig.from_env``), then on each photo at
    ``megapixels`` a find-by-name job, an everything job and a tap, each drawn and encoded as
    the worker stores it (overlays JPEG, the cut-out PNG), with the worker's allocator tuning
    and ``release_memory`` between jobs."""
    from models.allocator import release_memory, tune_allocator
    from models.overlay import encode_jpeg, encode_png, render_cutout, render_overlay
    from models.service import InferenceService

    tune_allocator()
    service = InferenceService(replace(ServiceConfig.from_env(), num_threads=threads))
    service.load()
    for index, (name, photo) in enumerate(load_photos(photos_dir).items()):
        big = upscale_to_megapixels(photo, megapixels)
        key = f"photo-{index}"
        for mode, prompt in (("grounded", PROMPTS.get(name, "dog")), ("everything", None)):
            result = service.analyze(big, mode, prompt, key=key)
            encode_jpeg(render_overlay(big, result.objects, scores=mode == "grounded"))
            del result  # the worker drops a job's result before the next one
            release_memory()
        tap = service.segment_point(big, (big.width / 2, big.height / 2), key=key)
        encode_png(render_cutout(big, tap.objects[0]))
        del tap
        release_memory()
    return round(peak_rss_mb())


def load_photos(directory: Path, names: Sequence[str] = PHOTO_NAMES) -> dict[str, Image.Image]:
    """The benchmark photos, upright RGB.

    Raises:
        FileNotFoundError: none of ``names`` is in ``directory``.
    """
    from PIL import ImageOps

    photos = {}
    for name in names:
        path = directory / name
        if path.is_file():
            with Image.open(path) as image:
                photos[name] = ImageOps.exif_transpose(image).convert("RGB")
    if not photos:
        raise FileNotFoundError(f"no benchmark photos in {directory}")
    return photos


def main(argv: Sequence[str] | None = None, *, service: Any = None) -> dict[str, Any]:
    """Run the benchmark (see the module docstring); returns the JSON line's values.

    ``service`` (tests): a loaded ``InferenceService`` to measure instead of the worker's
    weights or full-size random ones; its weights count as "real" only if all official.
    """
    parser = argparse.ArgumentParser(prog="python -m bench.speed", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="one repeat, two photos")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: MODEL_NUM_THREADS or 2)")  # fmt: skip
    parser.add_argument("--photos", type=Path, default=default_photos_dir())
    parser.add_argument("--no-reference", action="store_true", help="skip the reference runs")
    parser.add_argument("--megapixels", type=float, default=TARGET_MEGAPIXELS)
    parser.add_argument("--reference-photos", type=int, default=1,
                        help="photos for the slow reference end-to-end runs (~80 s each)")
    parser.add_argument("--reference-points", type=int, default=32,
                        help="points per side of the reference everything mode (its default)")
    parser.add_argument("--build-random", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--worker-rss", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.build_random:  # in a child process, so its memory is not in our peak RSS
        build_random_weights(args.build_random)
        return {}
    if args.worker_rss:
        values = {"worker_peak_rss_mb": worker_peak_rss(args.photos, args.threads or 2,
                                                        args.megapixels)}  # fmt: skip
        print(json.dumps(values), flush=True)
        return values

    from models.allocator import tune_allocator
    from models.service import InferenceService

    tune_allocator()
    threads = args.threads or int(os.environ.get("MODEL_NUM_THREADS") or 2)
    load_before = round(os.getloadavg()[0], 2)
    photos = load_photos(args.photos, PHOTO_NAMES[:2] if args.quick else PHOTO_NAMES)
    with tempfile.TemporaryDirectory(prefix="visionanything-bench-") as tmp:
        weights = "real"
        config = None
        if service is not None:
            official = all(v == "official" for v in service.weights.values())
            weights = "real" if official else "random"
        else:
            config = real_config()
            if config is None:
                weights = "random"
                print("No model weights found: building full-size architectures with RANDOM "
                      "weights (timings are representative; mask quality is not).", flush=True)
                subprocess.run([sys.executable, "-m", "bench.speed", "--build-random", tmp],
                               check=True)  # fmt: skip
                checkpoint = Path(tmp) / "mobile_sam.pt"
                gd_dir = Path(tmp) / "grounding-dino-tiny-random"
                config = replace(
                    ServiceConfig.from_env(),  # MODEL_PRECISION, MODEL_DEVICE as the worker's
                    model_dir=Path(tmp), mobile_sam_checkpoint=checkpoint,
                    grounding_dino_model=str(gd_dir), allow_unverified_weights=True,
                )  # fmt: skip
            service = InferenceService(replace(config, num_threads=threads))
            service.load()
        # Warm-up: first calls allocate and pick kernels.
        first = next(iter(photos.values()))
        service.analyze(first, "grounded", "dog", key="warm-up")
        service.analyze(first, "everything", key="warm-up")
        service.forget("warm-up")
        stages, extra = run(
            service, photos, repeats=1 if args.quick else 2, reference=not args.no_reference,
            reference_photos=args.reference_photos, megapixels=args.megapixels,
            reference_points=args.reference_points,
        )  # fmt: skip
        if config is not None:  # the worker's peak RSS, measured in a process of its own
            env = {**os.environ, "MOBILE_SAM_CHECKPOINT": str(config.mobile_sam_checkpoint or ""),
                   "GROUNDING_DINO_MODEL": config.grounding_dino_model,
                   "MODEL_DIR": str(config.model_dir),
                   "ALLOW_UNVERIFIED_WEIGHTS": "1" if config.allow_unverified_weights else ""}
            if not config.mobile_sam_checkpoint:
                env.pop("MOBILE_SAM_CHECKPOINT")
            child = subprocess.run(
                [sys.executable, "-m", "bench.speed", "--worker-rss", "--photos",
                 str(args.photos), "--threads", str(threads), "--megapixels",
                 str(args.megapixels)], env=env, capture_output=True, text=True, check=True,
            )  # fmt: skip
            extra.update(json.loads(child.stdout.strip().splitlines()[-1]))
    precision = "float32" if service.detector.autocast_dtype is None else "bfloat16"  # both
    header = {"weights": weights, "threads": threads, "load_before": load_before,
              "precision": precision,
              "load_after": round(os.getloadavg()[0], 2), "photos": list(photos)}  # fmt: skip
    values = report(stages, extra, header)
    values["recall"] = everything_recall(quick=args.quick)
    print(json.dumps(values), flush=True)
    return values


def everything_recall(*, quick: bool = False) -> dict[str, float]:
    """Print and return everything mode's recall on the weight-free oracle
    (``bench/recall.py``), ours beside ``SamAutomaticMaskGenerator``'s: the strategy's
    figures, which random weights cannot give."""
    from bench import recall

    results = recall.compare(range(2) if quick else range(4))
    print(recall.report(results), flush=True)
    return {f"{name}_{int(c * 10000)}bp": round(r.recall[c], 4)
            for name, r in results.items() for c in recall.SIZE_CLASSES} | {
        f"{name}_prompts": r.prompts for name, r in results.items()}


if __name__ == "__main__":
    main(sys.argv[1:])
