"""The detector comparison (``python -m bench.detectors``): a smoke test on tiny random
configs (it runs every detector's three passes and ends with one JSON line), and the OWLv2
new-words path that reuses a photo's image embedding. Speed is not checked here."""

from __future__ import annotations

import json

import pytest
import torch

from bench.detector_models import NAMES, NEW_WORDS, build_random, clip_tokenizer, load_runner
from bench.detectors import main
from tests.models.conftest import open_photo

SUMMARY_KEYS = {
    "first_pass_s", "new_words_s", "vocabulary_s", "vocabulary_passes", "vocabulary_words",
    "peak_rss_mb", "params_m", "precision", "work_size", "licence", "coco_ap", "lvis_ap",
    "checkpoint", "n", "load",
}  # fmt: skip
CLOSED_SET = {"d-fine-small", "rt-detr-v2-r18"}


def test_bench_compares_every_detector_and_ends_with_a_json_line(tmp_path, capsys):
    open_photo("dog.jpg").convert("RGB").resize((320, 213)).save(tmp_path / "dog.jpg")
    values = main(["--tiny", "--quick", "--photos", str(tmp_path)], subprocesses=False)
    lines = capsys.readouterr().out.strip().splitlines()
    assert json.loads(lines[-1]) == values
    assert {"detectors", "weights", "threads", "precision", "load", "photos"} <= set(values)
    assert values["weights"] == "random" and values["photos"] == ["dog.jpg"]
    assert set(values["detectors"]) == set(NAMES)
    for name, row in values["detectors"].items():
        assert SUMMARY_KEYS <= set(row), name
        assert row["first_pass_s"] > 0 and row["vocabulary_s"] > 0, name
        assert row["peak_rss_mb"] > 0 and row["params_m"] > 0 and row["vocabulary_passes"] >= 1
        if name in CLOSED_SET:  # fixed 80 COCO classes: no words can be asked
            assert row["new_words_s"] is None and row["vocabulary_words"] == 80
        else:
            assert row["new_words_s"] > 0, name
    assert any("RANDOM weights" in line for line in lines)
    assert any("n/a for new words (fixed 80 COCO classes)" in line for line in lines)


def test_clip_tokenizer_holds_the_vocabulary_words_whole():
    tokenizer = clip_tokenizer(["dog", "teddy", "bear", "cup"])
    ids = tokenizer("teddy bear")["input_ids"]
    assert ids[0] == 49406 and ids[-1] == 49407  # <|startoftext|>, <|endoftext|>
    assert len(ids) == 4  # "teddy" and "bear" one token each
    assert len(tokenizer) == 49408


@pytest.fixture(scope="module")
def owlv2(tmp_path_factory):
    """A tiny random OWLv2 in float32, loaded as the benchmark loads it."""
    directory = build_random("owlv2-base", tmp_path_factory.mktemp("owlv2"), tiny=True)
    return load_runner("owlv2-base", directory, "float32", tiny=True)


def test_owlv2_new_words_on_a_cached_image_embedding_match_the_full_forward(owlv2):
    """Asking new words reuses the photo's image embedding (``image_embedder``) and its boxes
    (``box_predictor``), and runs only the text tower and the class head: the logits and boxes
    are those of ``Owlv2ForObjectDetection.forward`` on the same inputs.

    The reused path runs the same float32 operations on the same tensors as ``forward`` (whose
    vision and text towers are separate calls too), so the values agree to rounding; atol
    1e-4 on logits of order 1-10 leaves room for BLAS kernels picked differently for the
    image pass run alone.
    """
    torch.manual_seed(1)
    side = owlv2.size[0]
    values = torch.rand(1, 3, side, side)
    feats, boxes = owlv2.image_features(values)  # once per photo
    for words in (["dog", "ball", "grass"], list(NEW_WORDS)):
        encoded = owlv2.tokenizer(words, padding="max_length", max_length=owlv2.max_tokens,
                                  return_tensors="pt")  # fmt: skip
        with torch.inference_mode():
            full = owlv2.model(input_ids=encoded["input_ids"], pixel_values=values,
                               attention_mask=encoded["attention_mask"])  # fmt: skip
        queries = owlv2.text_embeddings(encoded["input_ids"], encoded["attention_mask"])[None]
        mask = torch.ones(queries.shape[:2], dtype=torch.bool)
        logits = owlv2.class_logits(feats, queries, mask)
        assert logits.shape == full.logits.shape == (1, feats.shape[1], len(words))
        torch.testing.assert_close(logits, full.logits, atol=1e-4, rtol=0)
        torch.testing.assert_close(boxes, full.pred_boxes, atol=1e-5, rtol=0)
