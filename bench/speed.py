"""Speed benchmark of the inference service against the reference settings.

    python -m bench.speed [--quick] [--threads N] [--photos DIR] [--no-reference]

Uses the real weights when all three resolve (``MODEL_DIR``, ``MOBILE_SAM_CHECKPOINT``,
``GROUNDING_DINO_MODEL``, ``OMDET_TURBO_MODEL``, as the worker does), else builds the
full-size architectures (MobileSAM vit_t; Grounding DINO tiny: Swin-T + BERT-base, 900
queries; OmDet-Turbo tiny: Swin-T + CLIP B/16 text tower, 900 queries) with random weights
and says so. Times every stage (load, encoder, decoder, everything mode, find by name, a
tap, new words), ours and the reference setting, in one run
on the photos of ``../shared/photos`` (medians over photos and repeats), prints a table and,
last, one JSON line (times in seconds; ``peak_rss_mb`` and the other ``*_rss_mb`` values in
MiB, 2**20 bytes, the unit the table also prints beside GB = 10**9 bytes). Not run in CI;
``tests/bench/test_speed.py`` smoke-tests it on the small random fixtures.

The runs of ours are in ``bench.runs``, the reference's in ``bench.reference``, the table and
the JSON line in ``bench.report``; this module is the command line.

Reference settings: ``SamPredictor`` (``set_image``, ``predict``), ``SamAutomaticMaskGenerator``
with its defaults (32 points per side), Grounding DINO through its processor's default size
(shortest edge 800, longest 1333) followed by ``SamPredictor.predict_torch`` on its boxes.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.reference import Reference
from bench.report import report
from bench.runs import (
    PHOTO_NAMES,
    TARGET_MEGAPIXELS,
    build_random_weights,
    default_photos_dir,
    everything_recall,
    load_photos,
    real_config,
    run,
    worker_peak_rss,
)
from models.config import ServiceConfig


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

    from models.runtime.allocator import tune_allocator
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
                omdet_dir = Path(tmp) / "omdet-turbo-tiny-random"
                config = replace(
                    ServiceConfig.from_env(),  # MODEL_PRECISION, MODEL_DEVICE as the worker's
                    model_dir=Path(tmp), mobile_sam_checkpoint=checkpoint,
                    grounding_dino_model=str(gd_dir), omdet_turbo_model=str(omdet_dir),
                    allow_unverified_weights=True,
                )  # fmt: skip
            service = InferenceService(replace(config, num_threads=threads))
            service.load()
        # Warm-up: first calls allocate and pick kernels.
        first = next(iter(photos.values()))
        service.analyze(first, "grounded", ["dog"], key="warm-up")
        service.analyze(first, "everything", key="warm-up")
        service.forget("warm-up")
        reference = None if args.no_reference else Reference(
            service, photos=args.reference_photos, points=args.reference_points)  # fmt: skip
        stages, extra = run(service, photos, repeats=1 if args.quick else 2,
                            megapixels=args.megapixels, reference=reference)  # fmt: skip
        if config is not None:  # the worker's peak RSS, measured in a process of its own
            env = {**os.environ, "MOBILE_SAM_CHECKPOINT": str(config.mobile_sam_checkpoint or ""),
                   "GROUNDING_DINO_MODEL": config.grounding_dino_model,
                   "OMDET_TURBO_MODEL": config.omdet_turbo_model,
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


if __name__ == "__main__":
    main(sys.argv[1:])
