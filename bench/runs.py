"""The benchmark's runs of our own pipeline: its inputs (the shared photos at 12 MP, the
phrases asked of each), the per-stage and end-to-end timings, the worker's peak RSS in a
process of its own, full-size random weights when no real ones are on disk, and everything
mode's recall on the weight-free oracle (``bench.recall``)."""

from __future__ import annotations

import io
import json
import os
import resource
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from models.config import ServiceConfig

PHOTO_NAMES = ("dog.jpg", "bears.jpg", "car-and-bicycle.jpg", "letters.jpg")
PROMPTS = {  # the phrases find by name asks for in each photo
    "dog.jpg": ("dog", "ball", "grass"),
    "bears.jpg": ("teddy bear", "bear", "table"),
    "car-and-bicycle.jpg": ("car", "bicycle", "person"),
    "letters.jpg": ("letter", "table", "toy"),
}


def phrases_for(name: str) -> list[str]:
    """The phrases find by name asks for in the shared photo ``name`` (``["dog"]`` for a
    photo without its own), as ``InferenceService.analyze`` takes them."""
    return list(PROMPTS.get(name, ("dog",)))


TARGET_MEGAPIXELS = 12.0  # the speed targets are for a 12-megapixel phone photo


def default_photos_dir() -> Path:
    """``<repo>/../shared/photos``, as ``tests/conftest.py`` finds the real photos."""
    return Path(__file__).resolve().parents[2] / "shared" / "photos"


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


def upscale_to_megapixels(image: Image.Image, megapixels: float) -> Image.Image:
    """The photo resized (Lanczos) to about ``megapixels`` million pixels, same aspect; the
    shared photos are 3-4 MP and the speed targets are for a 12-MP phone photo."""
    scale = (megapixels * 1e6 / (image.width * image.height)) ** 0.5
    size = (round(image.width * scale), round(image.height * scale))
    return image.resize(size, Image.Resampling.LANCZOS)


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


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[float, Any]:
    """(seconds, result) of one call ``fn(*args, **kwargs)``."""
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result


# ---------------------------------------------------------------------- weights


def build_random_weights(directory: Path) -> tuple[Path, Path, Path]:
    """Full-size MobileSAM vit_t, Grounding DINO tiny (Swin-T, BERT-base, 900 queries) and
    OmDet-Turbo tiny (Swin-T, CLIP B/16 text tower, 900 queries;
    ``bench.detector_models.build_random``) with random weights (``torch.manual_seed(0)``) in
    ``directory``; returns (checkpoint, Grounding DINO dir, OmDet-Turbo dir).

    Grounding DINO's tokenizer is BERT-style with bert-base-uncased's size and special-token
    ids, holding the vocabulary's words whole (bert-base-uncased splits a few rare ones into
    word pieces, so real captions are a few tokens longer); OmDet-Turbo's a CLIP BPE of CLIP's
    size holding them (``bench.detector_models.clip_tokenizer``).
    """
    import torch
    from transformers import (
        BertTokenizerFast,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
    )

    from models.detect.vocabulary import VOCABULARY
    from models.segment.segmenter import import_mobile_sam

    checkpoint = directory / "mobile_sam.pt"
    torch.manual_seed(0)
    torch.save(import_mobile_sam().sam_model_registry["vit_t"]().state_dict(), checkpoint)

    phrases = (*VOCABULARY, *(p for asked in PROMPTS.values() for p in asked))
    words = sorted({word for phrase in phrases for word in phrase.split()})
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
    from bench.detector_models import build_random

    omdet_dir = build_random("omdet-turbo-tiny", directory / "omdet-turbo-tiny-random")
    return checkpoint, model_dir, omdet_dir


def real_config(environ: dict[str, str] | None = None) -> ServiceConfig | None:
    """The worker's config if the three models' weights are on disk, else None."""
    from models.errors import ModelError
    from models.runtime.weights import (
        resolve_grounding_dino,
        resolve_mobile_sam,
        resolve_omdet_turbo,
    )

    config = ServiceConfig.from_env(os.environ if environ is None else environ)
    try:
        resolve_mobile_sam(config)
        resolve_grounding_dino(config)
        resolve_omdet_turbo(config)
    except ModelError:
        return None
    return config


# ---------------------------------------------------------------------- runs


def run(
    service: Any,
    photos: dict[str, Image.Image],
    *,
    repeats: int,
    megapixels: float,
    reference: Any = None,
) -> tuple[list[Stage], dict[str, Any]]:
    """Time every stage on ``photos`` with a loaded ``InferenceService``; with a
    ``bench.reference.Reference``, the reference's stages too (its per-photo stages right
    after ours on the same photo, so both see the same load on a shared machine).

    Returns:
        (stages, extra): the table's rows and the values of the JSON line that are not
        medians of a stage (peak RSS, recall check, mask counts).
    """
    import torch

    from models.render.overlay import encode_jpeg, encode_png, render_overlay, render_preview
    from models.runtime.allocator import release_memory

    segmenter, detector, omdet = service.segmenter, service.detector, service.omdet
    big = {name: upscale_to_megapixels(p, megapixels) for name, p in photos.items()}
    stored = {name: encode_upload(p) for name, p in big.items()}  # as app.imaging stores uploads
    stages = {name: Stage(name) for name in (
        "encoder", "decoder_point_lowres", "decoder_point", "decoder_5_boxes",
        "everything_64_prompts", "reprompt_point",
        "reprompt_words", "reprompt_words_per_word", "reprompt_words_gd", "detector",
        "detector_vocabulary",
        "omdet_words", "omdet_vocabulary",
        "grounded", "grounded_per_phrase",
        "everything_masks",
        "everything_names", "everything", "everything_unfiltered", "everything_preview",
        "render_jpeg",
    )}  # fmt: skip
    extra: dict[str, Any] = {}
    shown: list[float] = []  # seconds from upload to the preview of each everything job

    def end_to_end(data: bytes, mode: str, phrases: list[str] | None, key: str) -> Any:
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

        result = service.analyze(photo, mode, phrases, key=key,
                                 preview=preview if mode == "everything" else None)  # fmt: skip
        overlay = encode_jpeg(render_overlay(photo, result.objects, scores=mode == "grounded"))
        json.dumps(result.to_json(), separators=(",", ":"))
        return result, overlay

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
                    segmenter.segment_boxes, photo, five_boxes(photo), embedding=embedding)[0])
                # Everything mode's cost per prompt (decoder and SAM's filters, batches of 16).
                in_h, in_w = embedding.input_size
                low = (-(-in_h * 256 // 1024), -(-in_w * 256 // 1024))
                grid = np.random.default_rng(counter).random((64, 2)) * [in_w, in_h]
                stages["everything_64_prompts"].ours.append(timed(
                    segmenter._grid_masks, embedding, grid.astype(np.float32), low)[0])
            phrases = phrases_for(name)
            stages["detector"].ours.append(timed(detector.detect, photo, phrases)[0])
            stages["detector_vocabulary"].ours.append(
                timed(detector.detect_vocabulary, photo, service.vocabulary)[0])
            if omdet is not None:
                # A photo not seen before (its features computed), the words' text cached.
                omdet.forget(key + "-omdet")
                release_memory()
                stages["omdet_vocabulary"].ours.append(timed(
                    omdet.detect_vocabulary, photo, service.vocabulary, key=key + "-omdet")[0])
                # Two new words on that photo, neither their text nor their task prompt seen.
                uncache_words(omdet, NEW_WORDS)
                release_memory()
                stages["omdet_words"].ours.append(
                    timed(omdet.detect, photo, NEW_WORDS, key=key + "-omdet")[0])
                omdet.forget(key + "-omdet")
            if reference is not None and repeat == 0:
                reference.time_stages(name, photo, stages)
            # End to end on a 12-MP copy, cold caches (a new key): upload -> overlay JPEG.
            photo12 = big[name]
            seconds, _ = timed(end_to_end, stored[name], "grounded", phrases, key)
            stages["grounded"].ours.append(seconds)
            # The same with at most one box per phrase, as many as the words asked for: what
            # trained weights return for these prompts, where random weights fill the cap of
            # 20 boxes (each one more mask to decode and draw).
            cap = detector.max_detections
            detector.max_detections = len(phrases)
            try:
                seconds, _ = timed(end_to_end, stored[name], "grounded", phrases,
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
            if omdet is not None and not result.objects:
                # Everything mode found objects and named them with OmDet-Turbo's vocabulary
                # pass, which keeps the photo's features, on trained weights; random weights
                # kept no mask, so nothing was named: the pass is made here, untimed.
                omdet.detect_vocabulary(photo12, service.vocabulary, key=key + "-all")
            for stage, cap in (("reprompt_words", None), ("reprompt_words_per_word", 1)):
                release_memory()
                finder = omdet or detector
                if omdet is not None:
                    uncache_words(omdet, NEW_WORDS)
                limit = finder.max_detections
                # As many boxes as words: what trained weights find for two words, where
                # random weights fill the cap of 20 (each one more mask at 12 MP).
                finder.max_detections = limit if cap is None else cap * len(NEW_WORDS)
                try:
                    words = service.analyze(photo12, "grounded", list(NEW_WORDS),
                                            key=key + "-all", new_words=True)  # fmt: skip
                finally:
                    finder.max_detections = limit
                stages[stage].ours.append(words.timings["total"])
            # The same words as they were found before OmDet-Turbo: Grounding DINO on the
            # photo's cached backbone (which its vocabulary pass left), one box per word.
            detector.detect(photo12, ["dog"], key=key + "-all")  # caches the backbone
            release_memory()
            limit = detector.max_detections
            detector.max_detections = len(NEW_WORDS)
            try:
                words = service.analyze(photo12, "grounded", list(NEW_WORDS), key=key + "-all")
            finally:
                detector.max_detections = limit
            stages["reprompt_words_gd"].ours.append(words.timings["total"])
            service.forget(key)
            service.forget(key + "-all")
            release_memory()  # as the worker does between jobs
    extra["peak_rss_mb"] = round(peak_rss_mb())
    if reference is not None:
        reference.run(photos, big, stages, extra)
    return list(stages.values()), extra


NEW_WORDS = ("cup", "book")  # asked again about a photo already analysed


def uncache_words(omdet: Any, words: Sequence[str]) -> None:
    """Drop ``words``' text embeddings and their task prompt's from OmDet-Turbo's caches, so a
    timed "new words" run encodes them as for words never asked before."""
    model = omdet.model
    for texts, cache in ((list(words), model.language_cache_class),
                         ([omdet.task_prompt(words)], model.language_cache_prompt)):
        ids, mask = omdet._tokens(texts)
        for row, row_mask in zip(ids, mask, strict=True):
            if cache.cache.pop(tuple(row[row_mask != 0].tolist()), None) is not None:
                cache.current_load -= 1


def five_boxes(photo: Image.Image) -> np.ndarray:
    """Five boxes (N, 4) xyxy photo pixels spread over the photo."""
    w, h = photo.width, photo.height
    return np.array([[w * a, h * b, w * (a + 0.3), h * (b + 0.4)] for a, b in
                     [(0.05, 0.05), (0.6, 0.1), (0.3, 0.3), (0.1, 0.55), (0.65, 0.55)]],
                    dtype=np.float32)  # fmt: skip


def worker_peak_rss(photos_dir: Path, threads: int, megapixels: float) -> int:
    """Peak RSS (MiB) of a process doing what the worker does, and nothing else: the three
    models loaded from the environment's config (``ServiceConfig.from_env``), then on each
    photo at ``megapixels`` a find-by-name job, an everything job, a tap and new words, each
    drawn and encoded as the worker stores it (overlays JPEG, the cut-out PNG), with the
    worker's allocator tuning and ``release_memory`` between jobs."""
    from models.render.overlay import encode_jpeg, encode_png, render_cutout, render_overlay
    from models.runtime.allocator import release_memory, tune_allocator
    from models.service import InferenceService

    tune_allocator()
    service = InferenceService(replace(ServiceConfig.from_env(), num_threads=threads))
    service.load()
    for index, (name, photo) in enumerate(load_photos(photos_dir).items()):
        big = upscale_to_megapixels(photo, megapixels)
        key = f"photo-{index}"
        for mode, phrases, new_words in (("grounded", phrases_for(name), False),
                                         ("everything", None, False),
                                         ("grounded", list(NEW_WORDS), True)):  # fmt: skip
            result = service.analyze(big, mode, phrases, key=key, new_words=new_words)
            encode_jpeg(render_overlay(big, result.objects, scores=mode == "grounded"))
            del result  # the worker drops a job's result before the next one
            release_memory()
        tap = service.segment_point(big, (big.width / 2, big.height / 2), key=key)
        encode_png(render_cutout(big, tap.objects[0]))
        del tap
        release_memory()
    return round(peak_rss_mb())


def everything_recall(*, quick: bool = False) -> dict[str, float]:
    """Print and return everything mode's recall on the weight-free oracle
    (``bench/recall.py``), ours beside ``SamAutomaticMaskGenerator``'s, then ours with the
    stand-in detectors' boxes as first prompts (``recall.compare_boxes``; keys
    "good_boxes_*", "poor_boxes_*"): the strategy's figures, which random weights cannot
    give."""
    from bench import recall

    seeds = range(2) if quick else range(4)
    results = recall.compare(seeds)
    print(recall.report(results), flush=True)
    # Everything mode as the service runs it with OmDet-Turbo: a detector's boxes first.
    boxed = recall.compare_boxes(seeds, plain=results["ours"])
    print(recall.report(boxed), flush=True)
    results |= {name.replace("ours + ", "").replace(" ", "_"): r
                for name, r in boxed.items() if name != "ours"}
    return {f"{name}_{int(c * 10000)}bp": round(r.recall[c], 4)
            for name, r in results.items() for c in recall.SIZE_CLASSES} | {
        f"{name}_prompts": r.prompts for name, r in results.items()}
