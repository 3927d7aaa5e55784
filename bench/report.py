"""The benchmark's report: the table printed (ours beside the reference setting, medians)
and the values of its last line, one JSON object."""

from __future__ import annotations

from typing import Any

from bench.reference import RECALL_TARGET
from bench.runs import Stage

TABLE_ROWS = [
    ("encoder", "MobileSAM image encoder (1024 long side)", "SamPredictor.set_image"),
    ("decoder_point_lowres", "  prompt enc + mask decoder, 1 point, low-res (decoder only)", ""),
    ("decoder_point", "  1 point, best of 3, upscaled to photo", "SamPredictor.predict"),
    ("decoder_5_boxes", "  5 boxes, upscaled to photo", "predict_torch, batched"),
    ("everything_64_prompts", "  64 everything-mode point prompts (with SAM's filters)", ""),
    ("detector", "Grounding DINO, 3 phrases", "shortest edge 800"),
    ("detector_vocabulary", "Grounding DINO, whole vocabulary (3 captions)", ""),
    ("omdet_vocabulary", "OmDet-Turbo, whole vocabulary, one pass (names)", ""),
    ("omdet_words", "OmDet-Turbo, 2 new words on a photo seen (detection)", ""),
    ("grounded", "find by name, 12 MP, end to end (overlay JPEG)", "GD@800 + SamPredictor"),
    ("grounded_per_phrase", "  the same, one box per phrase (3 boxes)", ""),
    ("everything_masks", "everything mode: encoder + masks", ""),
    ("everything_names", "everything mode: naming (vocabulary)", ""),
    ("everything", "everything mode, 12 MP, end to end (overlay JPEG)", "AMG defaults, 32x32"),
    ("everything_unfiltered", "  filters off (random weights: masks kept, named, drawn)", ""),
    ("everything_preview", "    of which until the masks are shown (preview PNG)", ""),
    ("render_jpeg", "  of which overlay + JPEG, 12 MP", ""),
    ("reprompt_point", "asking again: a tap, to the mask (cached)", ""),
    ("reprompt_words", "asking again: new words, to masks (OmDet-Turbo, cached)", ""),
    ("reprompt_words_per_word", "  the same, one box per word (2 boxes)", ""),
    ("reprompt_words_gd", "  the same with Grounding DINO (backbone cached)", ""),
]


def fmt_seconds(value: float | None) -> str:
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
        print(f"{label:58} {fmt_seconds(ours):>10} {fmt_seconds(ref):>11}  {setting} {n}")
    if "worker_peak_rss_mb" in extra:
        print(f"peak RSS of a worker process (the three models; find by name, everything, "
              f"new words, tap on each photo): {fmt_mib(extra['worker_peak_rss_mb'])}")
    print(f"peak RSS of this benchmark process (ours + the reference's per-photo stages): "
          f"{fmt_mib(extra['peak_rss_mb'])}"
          + (f" (with the reference runs: {fmt_mib(extra['peak_rss_with_reference_mb'])})"
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
        names = med("omdet_vocabulary") or med("detector_vocabulary") or 0  # the service's namer
        estimate = round((med("everything") or 0) + names, 3)
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
        "reprompt_words_per_word_s": med("reprompt_words_per_word"),
        "reprompt_words_gd_s": med("reprompt_words_gd"),
        "encoder_s": med("encoder"),
        "decoder_point_s": med("decoder_point"),
        "decoder_point_lowres_s": med("decoder_point_lowres"),
        "everything_64_prompts_s": med("everything_64_prompts"),
        "detector_s": med("detector"),
        "detector_vocabulary_s": med("detector_vocabulary"),
        "omdet_vocabulary_s": med("omdet_vocabulary"),
        "omdet_words_s": med("omdet_words"),
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


def fmt_mib(mib: float) -> str:
    """A peak RSS in MiB as printed: "1,850 MiB (1.94 GB)" (GB = 10**9 bytes)."""
    return f"{mib:,.0f} MiB ({mib * 2**20 / 1e9:.2f} GB)"
