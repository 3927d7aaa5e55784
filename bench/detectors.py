"""Detector comparison: Grounding DINO tiny as the service runs it beside the other detectors
transformers ships (OmDet-Turbo, OWLv2, D-FINE, RT-DETRv2), on the same photos in one run.

    python -m bench.detectors [--quick] [--photos DIR] [--only NAME[,NAME]] [--threads N]

No weights are downloaded: each detector is the full-size architecture of its published
checkpoint, built from its config with random weights (``torch.manual_seed(0)``), so the
timings, memory and parameter counts are those of the real models and the boxes are noise.
Tokenizers are built locally too (:func:`clip_tokenizer`, :func:`bert_tokenizer`).

Each detector is built in a child process, saved, and measured in another child that loads
only it (so its peak RSS is that detector's, as ``bench.speed``'s worker RSS child). The child
uses the worker's allocator tuning (``models.runtime.allocator.tune_allocator``), ``--threads``
torch threads (2) and the service's precision choice (``models.runtime.precision``,
``MODEL_PRECISION``, default auto: bfloat16 autocast on a CPU with native bfloat16, else
float32), the same for every detector. Per photo it times, in this order:

- ``vocabulary_s``: everything mode's names on a photo not seen before: the image pass and
  every word of ``models.detect.vocabulary.VOCABULARY``, in as many passes as the text length
  allows (Grounding DINO: 3 captions of 256 tokens; OmDet-Turbo: one, every word a class of
  its own, as the service runs it; OWLv2: one), with the vocabulary's text encodings cached
  (they are the same for every photo);
- ``first_pass_s``: the photo's first pass with its three phrases (``bench.runs.PROMPTS``), no
  image features and no text encodings cached;
- ``new_words_s``: two new phrases (``NEW_WORDS``) on the same photo, reusing what the
  architecture allows (Grounding DINO: the Swin backbone; OmDet-Turbo: the backbone and
  hybrid encoder; OWLv2: the image embedding and its boxes, so only the text tower and one
  matrix product run), their text not cached. Closed-set detectors: none (fixed classes).

Each time includes resizing the photo (Pillow) and a light selection of the outputs (scores,
top boxes); medians over photos and repeats. The table printed ends with one JSON line (times
in seconds, ``peak_rss_mb`` in MiB, parameters in millions), with the 1-minute load average
before and after. The published accuracy figures (``PUBLISHED``) are quoted from the papers
and model cards named there, not measured. Not run in CI; ``tests/bench/test_detectors.py``
smoke-tests it on tiny random configs (``--tiny``). The detectors, their configs and the
way each reuses its image features are in ``bench.detector_models``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from bench.detector_models import (
    NAMES,
    NEW_WORDS,
    PUBLISHED,
    build_random,
    load_runner,
)
from bench.runs import PHOTO_NAMES, PROMPTS, default_photos_dir, load_photos, peak_rss_mb, timed

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------- measuring


def measure(name: str, directory: Path, photos: dict[str, Image.Image], *, repeats: int,
            threads: int, precision: str, tiny: bool = False) -> dict[str, Any]:
    """Load detector ``name`` and time its three passes on every photo, ``repeats`` times
    (module docstring), after a warm-up (a vocabulary pass and a first pass on the first
    photo, which also caches the vocabulary's text encodings). The process is set up as the
    service loads its models: triton kept out (``models.service.skip_triton``), the allocator
    tuned, and the GPU libraries' pages dropped after loading
    (``models.runtime.allocator.drop_gpu_library_pages``).

    Returns:
        The child's values: per-call seconds ``first_pass_s``, ``new_words_s`` (empty for a
        closed-set detector), ``vocabulary_s`` (lists), ``vocabulary_passes``, ``params``
        (count), ``precision`` ("bfloat16"/"float32"), ``work_size``, ``load_s`` (seconds to
        load), ``peak_rss_mb`` (this process's peak, MiB) and the load average around it.
    """
    from models.service import skip_triton

    skip_triton("cpu")  # before torch is imported, as InferenceService.load does
    import torch

    from models.detect.vocabulary import VOCABULARY
    from models.runtime.allocator import drop_gpu_library_pages, release_memory, tune_allocator

    tune_allocator()
    torch.set_num_threads(threads)
    load_before = round(os.getloadavg()[0], 2)
    load_s, runner = timed(load_runner, name, directory, precision, tiny=tiny)
    drop_gpu_library_pages()
    first = next(iter(photos.values()))
    runner.vocabulary(first, VOCABULARY, "warm-up")
    runner.keep_vocabulary_text()
    runner.drop_text()
    runner.first_pass(first, PROMPTS.get(next(iter(photos)), ("dog",)), "warm-up")
    runner.forget("warm-up")
    times: dict[str, list[float]] = {"first_pass_s": [], "new_words_s": [], "vocabulary_s": []}
    passes = 0
    for repeat in range(repeats):
        for index, (photo_name, photo) in enumerate(photos.items()):
            key = f"photo-{repeat}-{index}"
            release_memory()
            runner.restore_vocabulary_text()
            seconds, passes = timed(runner.vocabulary, photo, VOCABULARY, key + "-all")
            times["vocabulary_s"].append(seconds)
            runner.forget(key + "-all")
            release_memory()
            runner.drop_text()
            phrases = PROMPTS.get(photo_name, ("dog",))
            times["first_pass_s"].append(timed(runner.first_pass, photo, phrases, key)[0])
            release_memory()
            runner.drop_text()
            seconds, ran = timed(runner.new_words, photo, NEW_WORDS, key)
            if ran is not None:
                times["new_words_s"].append(seconds)
            runner.forget(key)
    return {
        "name": name, **times, "vocabulary_passes": passes, "params": runner.parameters,
        "precision": "float32" if runner.dtype is None else str(runner.dtype).split(".")[-1],
        "work_size": runner.work_size, "load_s": round(load_s, 3),
        "peak_rss_mb": round(peak_rss_mb()), "load": [load_before, round(os.getloadavg()[0], 2)],
    }  # fmt: skip


def _child(args: list[str]) -> dict[str, Any]:
    """Run ``python -m bench.detectors ARGS`` and return its last output line as JSON.

    Raises:
        subprocess.CalledProcessError: the child failed (its stderr is logged).
    """
    done = subprocess.run([sys.executable, "-m", "bench.detectors", *args], capture_output=True,
                          text=True)  # fmt: skip
    if done.returncode:
        log.error("%s failed:\n%s", args[:2], done.stderr[-4000:])
        done.check_returncode()
    lines = done.stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines else {}


def median(values: Sequence[float]) -> float | None:
    """Median of ``values`` rounded to ms, None when empty."""
    return round(statistics.median(values), 3) if values else None


def fmt(value: float | None) -> str:
    """Seconds as printed: "850 ms" below 1 s, "2.41 s" above, "-" for None."""
    return "-" if value is None else (f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s")


def summarise(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per detector, the JSON line's values: medians of the children's timings (s), peak RSS
    (MiB), parameters (millions) and the published figures (``PUBLISHED``)."""
    from models.detect.vocabulary import COCO_WORDS, VOCABULARY

    summary = {}
    for r in results:
        pub = PUBLISHED[r["name"]]
        summary[r["name"]] = {
            "first_pass_s": median(r["first_pass_s"]),
            "new_words_s": median(r["new_words_s"]),
            "vocabulary_s": median(r["vocabulary_s"]),
            "vocabulary_passes": r["vocabulary_passes"],
            "vocabulary_words": len(VOCABULARY) if pub.open_vocabulary else len(COCO_WORDS),
            "peak_rss_mb": r["peak_rss_mb"], "params_m": round(r["params"] / 1e6, 1),
            "load_s": r["load_s"], "precision": r["precision"], "work_size": r["work_size"],
            "n": len(r["first_pass_s"]), "load": r["load"], "licence": pub.licence,
            "coco_ap": pub.coco_ap, "lvis_ap": pub.lvis_ap, "checkpoint": pub.checkpoint,
        }  # fmt: skip
    return summary


def report(summary: dict[str, dict[str, Any]], header: dict[str, Any]) -> None:
    """Print the comparison table, the published figures and their sources."""
    from models.detect.vocabulary import VOCABULARY

    print(f"weights: {header['weights']} (full-size architectures built from the published "
          "checkpoints' configs, seeded; timings and memory representative, boxes noise)")
    print(f"torch threads: {header['threads']}   precision: {header['precision']}   load "
          f"average before/after: {header['load'][0]} / {header['load'][1]}   photos: "
          f"{header['photos']}   repeats: {header['repeats']}")
    print(f"{'detector':20} {'work size':>10} {'1st pass':>9} {'new words':>10} "
          f"{'vocabulary':>11} {'passes':>6} {'peak RSS':>9} {'params':>7} {'COCO':>5} "
          f"{'LVIS':>5}  licence")
    for name, s in summary.items():
        words = ("n/a" if s["new_words_s"] is None else fmt(s["new_words_s"]))
        vocab = fmt(s["vocabulary_s"]) + ("" if PUBLISHED[name].open_vocabulary else "*")
        coco = "-" if s["coco_ap"] is None else f"{s['coco_ap']:.1f}"
        lvis = "-" if s["lvis_ap"] is None else f"{s['lvis_ap']:.1f}"
        print(f"{name:20} {s['work_size']:>10} {fmt(s['first_pass_s']):>9} {words:>10} "
              f"{vocab:>11} {s['vocabulary_passes']:>6} {s['peak_rss_mb']:>5} MiB "
              f"{s['params_m']:>6}M {coco:>5} {lvis:>5}  {s['licence']}  (n={s['n']}, "
              f"load {s['load'][0]}-{s['load'][1]})")
    closed = [n for n in summary if not PUBLISHED[n].open_vocabulary]
    if closed:
        print(f"* {', '.join(closed)}: n/a for new words (fixed 80 COCO classes); the vocabulary"
              f" column is its one pass per photo, which names 80 of the vocabulary's "
              f"{len(VOCABULARY)} words (its COCO words)")
    print("published figures (quoted, not measured): COCO = box AP on val2017 (zero-shot for "
          "open-vocabulary detectors, supervised for COCO detectors); LVIS = zero-shot AP on "
          "minival")
    for name in summary:
        print(f"  {name}: {PUBLISHED[name].checkpoint}; {PUBLISHED[name].source}; input "
              f"{PUBLISHED[name].work_size}")


def main(argv: Sequence[str] | None = None, *, subprocesses: bool = True) -> dict[str, Any]:
    """Run the comparison (module docstring); returns the JSON line's values.

    ``subprocesses=False`` (tests): build and measure every detector in this process, so the
    peak RSS is this process's, not one detector's.
    """
    parser = argparse.ArgumentParser(prog="python -m bench.detectors", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="one repeat, two photos")
    parser.add_argument("--photos", type=Path, default=default_photos_dir())
    parser.add_argument("--only", default="", help=f"comma-separated, of: {', '.join(NAMES)}")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", default=os.environ.get("MODEL_PRECISION") or "auto")
    parser.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--build", nargs=2, metavar=("NAME", "DIR"), help=argparse.SUPPRESS)
    parser.add_argument("--worker", nargs=2, metavar=("NAME", "DIR"), help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    repeats = args.repeats or (1 if args.quick else 2)
    names = PHOTO_NAMES[:2] if args.quick else PHOTO_NAMES
    if args.build:
        build_random(args.build[0], Path(args.build[1]), tiny=args.tiny)
        return {}
    if args.worker:
        values = measure(args.worker[0], Path(args.worker[1]), load_photos(args.photos, names),
                         repeats=repeats, threads=args.threads, precision=args.precision,
                         tiny=args.tiny)  # fmt: skip
        print(json.dumps(values), flush=True)
        return values
    chosen = [n.strip() for n in args.only.split(",") if n.strip()] or list(NAMES)
    unknown = set(chosen) - set(NAMES)
    if unknown:
        parser.error(f"unknown detector(s) {', '.join(sorted(unknown))}; of {', '.join(NAMES)}")
    photos = load_photos(args.photos, names)
    load_before = round(os.getloadavg()[0], 2)
    print("No weights are downloaded: every detector is a full-size architecture with RANDOM "
          "weights (timings and memory representative; boxes are noise).", flush=True)
    results = []
    extra = ["--photos", str(args.photos), "--threads", str(args.threads), "--precision",
             args.precision, "--repeats", str(repeats)] + ["--tiny"] * args.tiny  # fmt: skip
    extra += ["--quick"] * args.quick
    with tempfile.TemporaryDirectory(prefix="visionanything-detectors-") as tmp:
        for name in chosen:
            directory = Path(tmp) / name
            if subprocesses:
                _child(["--build", name, str(directory), *extra])
                results.append(_child(["--worker", name, str(directory), *extra]))
            else:
                build_random(name, directory, tiny=args.tiny)
                results.append(measure(name, directory, photos, repeats=repeats,
                                       threads=args.threads, precision=args.precision,
                                       tiny=args.tiny))  # fmt: skip
            shutil.rmtree(directory, ignore_errors=True)
            print(f"{name}: done (peak RSS {results[-1]['peak_rss_mb']} MiB)", flush=True)
    summary = summarise(results)
    precisions = sorted({s["precision"] for s in summary.values()})
    header = {"weights": "random", "threads": args.threads, "precision": "/".join(precisions),
              "load": [load_before, round(os.getloadavg()[0], 2)], "photos": list(photos),
              "repeats": repeats}  # fmt: skip
    report(summary, header)
    values = {"detectors": summary, **header}
    print(json.dumps(values), flush=True)
    return values


if __name__ == "__main__":
    main(sys.argv[1:])
