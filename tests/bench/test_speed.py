"""Smoke test of the benchmark (``python -m bench.speed``) on the small random fixtures: it
runs end to end, prints everything mode's recall on the oracle, and ends with one JSON line.
Speed is not checked here."""

from __future__ import annotations

import json

from bench.speed import main
from tests.models.conftest import open_photo

KEYS = {
    "grounded_s", "everything_s", "reprompt_s", "encoder_s", "detector_s", "peak_rss_mb",
    "everything_reference_s", "grounded_reference_s", "weights", "omdet_vocabulary_s",
    "omdet_words_s", "reprompt_words_s", "reprompt_words_per_word_s", "reprompt_words_gd_s",
    "everything_64_prompts_s",
}  # fmt: skip


def test_bench_prints_a_table_and_a_json_line(service, tmp_path, capsys):
    open_photo("dog.jpg").convert("RGB").resize((320, 213)).save(tmp_path / "dog.jpg")
    values = main(
        ["--quick", "--photos", str(tmp_path), "--megapixels", "0.1",
         "--reference-points", "4"],
        service=service,
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert json.loads(lines[-1]) == values
    assert KEYS <= set(values) and values["weights"] == "random"
    assert values["grounded_s"] > 0 and values["reprompt_s"] > 0 and values["peak_rss_mb"] > 0
    assert values["everything_reference_s"] > 0  # the reference ran on the same weights
    assert values["omdet_vocabulary_s"] > 0 and values["omdet_words_s"] > 0  # their rows
    assert any("OmDet-Turbo, whole vocabulary, one pass" in line for line in lines)
    assert any("recall" in line for line in lines), "the recall check says what it found"
    assert any(line.startswith("everything mode recall on the synthetic oracle") for line in lines)
    assert 0 < values["recall"]["ours_100bp"] <= 1 and values["recall"]["reference_prompts"] > 0
    assert values["recall"]["good_boxes_prompts"] > 0  # with a stand-in detector's boxes
    assert any(line.startswith("weights: random") for line in lines)


def test_bench_times_everything_mode_with_its_filters_off_when_they_keep_nothing(
    service, tmp_path, capsys
):
    """With SAM's IoU and stability filters on, random weights keep no mask, so the
    benchmark also times everything mode with them off: masks kept, named and drawn."""
    from dataclasses import replace

    open_photo("dog.jpg").convert("RGB").resize((320, 213)).save(tmp_path / "dog.jpg")
    segmenter = service.segmenter
    settings = segmenter.everything_settings
    segmenter.everything_settings = replace(settings, pred_iou_thresh=0.86,
                                            stability_score_thresh=0.92)  # fmt: skip
    try:
        values = main(
            ["--quick", "--no-reference", "--photos", str(tmp_path), "--megapixels", "0.1"],
            service=service,
        )
    finally:
        segmenter.everything_settings = settings
    lines = capsys.readouterr().out.strip().splitlines()
    assert values["everything_with_names_estimate_s"] > 0  # the filters kept nothing
    assert values["everything_unfiltered_s"] > 0
    # The masks were shown (the worker's preview PNG) before the names were found.
    assert 0 < values["everything_preview_s"] < values["everything_unfiltered_s"]
    kept = next(line for line in lines if "filters off, objects per photo" in line)
    counts = json.loads(kept.split("objects per photo: ", 1)[1].split(" (")[0])
    assert counts and all(count > 0 for count in counts), kept
