"""Grounding DINO detector on the small random-weight model: labels are the asked phrases,
boxes are photo pixels, duplicates are gone."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.ops import box_convert, box_iou

from models.detect.detector import GroundingDinoDetector, phrase_scores
from models.detect.naming import name_boxes
from models.errors import BadPromptError, ModelError
from tests.models.conftest import open_photo


@pytest.fixture(scope="module")
def detector(grounding_dino_dir):
    return GroundingDinoDetector.from_pretrained(grounding_dino_dir)


def test_caption_tokens_are_mapped_to_their_phrases(detector):
    caption, owner = detector._encode_text(["cat", "teddy bears", "dog"])
    assert caption == "cat. teddy bears. dog."
    tokens = detector.processor.tokenizer.convert_ids_to_tokens(
        detector.processor.tokenizer(caption)["input_ids"]
    )
    by_phrase = {p: [t for t, o in zip(tokens, owner, strict=True) if o == p] for p in range(3)}
    assert by_phrase == {0: ["cat"], 1: ["teddy", "bears"], 2: ["dog"]}
    assert all(owner[i] == -1 for i, t in enumerate(tokens) if t in ("[CLS]", "[SEP]", "."))


def test_detections_are_labelled_phrases_in_photo_pixels(detector):
    photo = open_photo("car-and-bicycle.jpg").convert("RGB")
    phrases = ["car", "bicycle", "person"]
    found = detector.detect(photo, phrases)
    assert 0 < len(found) <= detector.max_detections
    scores = [d.score for d in found]
    assert scores == sorted(scores, reverse=True)
    assert all(detector.box_threshold < s <= 1.0 for s in scores)
    for d in found:
        assert d.label in phrases
        x0, y0, x1, y1 = d.box
        assert 0 <= x0 < x1 <= photo.width and 0 <= y0 < y1 <= photo.height
    boxes = torch.tensor([d.box for d in found])
    same_label = torch.tensor([[a.label == b.label for b in found] for a in found])
    overlap = box_iou(boxes, boxes).fill_diagonal_(0)
    assert not bool(((overlap > detector.nms_iou) & same_label).any()), "NMS kept a duplicate"


def test_model_runs_at_reduced_size(detector, monkeypatch):
    photo = open_photo("dog.jpg").convert("RGB")
    seen = {}
    forward = detector.model.forward

    def spy(*args, **kwargs):
        seen["shape"] = tuple(kwargs["pixel_values"].shape)
        return forward(*args, **kwargs)

    monkeypatch.setattr(detector.model, "forward", spy)
    detector.detect(photo, ["dog"])
    _, _, height, width = seen["shape"]
    assert min(height, width) <= detector.shortest_edge
    assert max(height, width) <= detector.longest_edge


def test_high_threshold_finds_nothing(detector):
    photo = open_photo("dog.jpg").convert("RGB").resize((320, 213))
    detector_strict = GroundingDinoDetector(detector.model, detector.processor, box_threshold=1.0)
    assert detector_strict.detect(photo, ["dog"]) == []


def test_prompts_beyond_the_text_limit_are_refused(detector):
    with pytest.raises(BadPromptError, match="too much text"):
        detector._encode_text(["cat " * 300])
    with pytest.raises(BadPromptError):
        detector.detect(open_photo("dog.jpg").convert("RGB"), [])


def test_unloadable_directory_is_a_model_error(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelError, match="could not be loaded"):
        GroundingDinoDetector.from_pretrained(tmp_path)


def test_detections_unpack_as_label_score_box(detector):
    photo = open_photo("letters.jpg").convert("RGB")
    label, score, box = detector.detect(photo, ["letter"])[0]
    assert label == "letter" and isinstance(score, float) and len(box) == 4


def test_backbone_cache_keeps_feature_maps_only_with_the_same_outputs(grounding_dino_dir):
    """The cache keeps the backbone's feature maps, not the position embeddings (recomputed
    from the mask): a pass from the cache is bit-identical to an uncached one."""
    detector = GroundingDinoDetector.from_pretrained(grounding_dino_dir)
    cache = detector._backbone_cache
    runs = []
    forward = cache._forward
    cache._forward = lambda *args: runs.append(1) or forward(*args)
    photo = open_photo("dog.jpg").convert("RGB")
    pixels = detector._pixels(photo)
    phrases = ["dog", "ball"]

    fresh = detector._run(pixels, phrases, None)
    first = detector._run(pixels, phrases, "photo@1")
    again = detector._run(pixels, phrases, "photo@1")
    assert len(runs) == 2, "the third pass did not come from the cache"
    for got in (first, again):
        assert torch.equal(got[0], fresh[0]) and torch.equal(got[1], fresh[1])
    ((shape, kept),) = cache.entries.values()
    assert shape == tuple(pixels["pixel_values"].shape)
    assert len(kept) == len(detector.model.config.backbone_config.out_indices)
    for feature_map, mask in kept:  # (map, mask) per level, nothing else
        assert feature_map.ndim == 4 and mask.dtype == torch.bool
        assert mask.shape == (1, *feature_map.shape[-2:])


def test_quiet_loading_turns_progress_bars_off_and_restores_them():
    from transformers.utils import logging as hf_logging

    from models.detect.detector import quiet_loading

    was = hf_logging.is_progress_bar_enabled()
    try:
        for before in (True, False):
            (hf_logging.enable_progress_bar if before else hf_logging.disable_progress_bar)()
            with pytest.raises(RuntimeError), quiet_loading():
                assert not hf_logging.is_progress_bar_enabled()
                raise RuntimeError("a failed load")
            assert hf_logging.is_progress_bar_enabled() is before
    finally:
        (hf_logging.enable_progress_bar if was else hf_logging.disable_progress_bar)()


def _logit(p: float) -> float:
    """The logit whose sigmoid is probability ``p``."""
    return math.log(p / (1.0 - p))


def _fake_outputs(detector, monkeypatch, rows, boxes):
    """Make the model return hand-built outputs: ``rows`` one {text position: probability}
    dict per query (other positions 1e-4), ``boxes`` their normalised cxcywh boxes. The
    pixel_values shape each call receives is recorded in the returned list."""
    seen = []
    logits = torch.full((1, len(rows), detector.max_text_len), _logit(1e-4))
    for q, row in enumerate(rows):
        for t, p in row.items():
            logits[0, q, t] = _logit(p)

    def forward(*args, **kwargs):
        seen.append(tuple(kwargs["pixel_values"].shape))
        return SimpleNamespace(logits=logits, pred_boxes=torch.tensor([boxes]))

    monkeypatch.setattr(detector.model, "forward", forward)
    return seen


def test_a_phrase_scores_the_mean_of_its_tokens():
    """Hand-built token probabilities for the caption "teddy bear. bear.": on a bear ("teddy"
    low) "bear" must win; on a teddy bear (both of its tokens high) "teddy bear" must win. The
    highest token alone would score "teddy bear" as high as "bear" on any bear."""
    owner = np.array([-1, 0, 0, -1, 1, -1, -1])  # [CLS] teddy bear . bear . [SEP]
    probs = torch.tensor([[0.0, 0.05, 0.80, 0.0, 0.80, 0.0, 0.0],   # a bear
                          [0.0, 0.70, 0.60, 0.0, 0.50, 0.0, 0.0],   # a teddy bear
                          [0.9, 0.10, 0.10, 0.9, 0.10, 0.9, 0.9]])  # separators count for none
    scores = phrase_scores(probs, owner, 2)
    assert scores.shape == (3, 2) and scores.dtype == torch.float32
    # float32 sums of two numbers in 0-1 and a halving: within a few ulps (~1e-7) of the
    # decimal means
    torch.testing.assert_close(scores, torch.tensor([[0.425, 0.80], [0.65, 0.50], [0.10, 0.10]]),
                               rtol=0, atol=1e-6)
    assert scores[:2].argmax(dim=1).tolist() == [1, 0]
    # a phrase cut off beyond the model's text positions has no tokens and scores 0
    assert phrase_scores(probs[:, :3], owner, 2)[:, 1].tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("compound, head", [("teddy bear", "bear"), ("toy car", "car")])
def test_a_compound_and_its_head_word_are_told_apart(detector, monkeypatch, compound, head):
    """Through :meth:`detect` with hand-built logits for "<compound>. <head>.": two queries on
    a real bear (car), where the compound's first token is low, are the head word (and one
    box after NMS), and the naming says so; a teddy bear (toy car), where all of the
    compound's tokens are high, is the compound. Scored by their highest token, the first
    query would be the compound (its "bear" token is the highest) and the second the head
    word, within the naming's margin of each other: "something?"."""
    _, owner = detector._encode_text([compound, head])
    first, second = np.flatnonzero(owner == 0)
    (alone,) = np.flatnonzero(owner == 1)
    rows = [{first: 0.05, second: 0.82, alone: 0.80},  # a real bear (car)
            {first: 0.05, second: 0.70, alone: 0.78},  # the same bear, another query
            {first: 0.70, second: 0.60, alone: 0.50}]  # a teddy bear (toy car)
    boxes = [[0.25, 0.5, 0.3, 0.6], [0.252, 0.5, 0.3, 0.6], [0.75, 0.5, 0.3, 0.6]]
    _fake_outputs(detector, monkeypatch, rows, boxes)
    found = detector.detect(Image.new("RGB", (200, 100), "white"), [compound, head])
    assert [d.label for d in found] == [head, compound]
    # the hand-set probabilities go through logit, float32 sigmoid and a mean: within 1e-5
    assert found[0].score == pytest.approx(0.80, abs=1e-5)
    assert found[1].score == pytest.approx(0.65, abs=1e-5)
    names = name_boxes([(20.0, 20.0, 80.0, 80.0), (120.0, 20.0, 180.0, 80.0)], found)
    assert [(n.label, n.named) for n in names] == [(head, True), (compound, True)]


def test_a_box_matching_part_of_the_phrase_is_not_that_phrase(detector, monkeypatch):
    """Asked for "teddy bear" only, a real bear ("bear" 0.6, "teddy" 0.05; mean 0.325) is
    below the box threshold, though its best token is above it."""
    _, owner = detector._encode_text(["teddy bear"])
    teddy, bear = np.flatnonzero(owner == 0)
    _fake_outputs(detector, monkeypatch, [{teddy: 0.05, bear: 0.60}], [[0.5, 0.5, 0.4, 0.4]])
    assert detector.box_threshold == 0.35
    assert detector.detect(Image.new("RGB", (200, 100)), ["teddy bear"]) == []


def test_small_crops_are_enlarged_to_the_work_size(detector, monkeypatch):
    """A 160 x 120 crop (a tapped object's) reaches the model at the work size, as the model
    was trained (shortest edge 512); its boxes come back in the crop's own pixels."""
    assert detector.work_size((120, 160)) == (512, 683)  # 160 * 512 / 120 = 682.7
    assert detector.work_size((100, 3000)) == (28, 853)  # the longest edge's limit rules
    assert detector.work_size((1365, 2048)) == (512, 768)
    seen = _fake_outputs(detector, monkeypatch, [{1: 0.9}], [[0.5, 0.5, 0.5, 0.5]])
    crop = Image.new("RGB", (160, 120), "red")
    (found,) = detector.detect(crop, ["dog"])
    assert seen == [(1, 3, 512, 683)]
    # normalised box times the crop's size: 0.5 +- 0.25 of 160 and of 120, float32-exact
    assert found.box == pytest.approx((40.0, 30.0, 120.0, 90.0), abs=1e-4)


def test_small_crops_run_through_the_real_model_at_the_work_size(detector, monkeypatch):
    crop = open_photo("dog.jpg").convert("RGB").crop((800, 500, 960, 620))
    seen = {}
    forward = detector.model.forward

    def spy(*args, **kwargs):
        seen["shape"] = tuple(kwargs["pixel_values"].shape)
        return forward(*args, **kwargs)

    monkeypatch.setattr(detector.model, "forward", spy)
    monkeypatch.setattr(detector, "box_threshold", 0.0)  # random weights: keep every box
    found = detector.detect(crop, ["dog"])
    assert seen["shape"] == (1, 3, 512, 683)
    assert found and all(0 <= d.box[0] < d.box[2] <= 160 and 0 <= d.box[1] < d.box[3] <= 120
                         for d in found)


def test_nms_merges_duplicates_of_one_object_and_keeps_a_pile_of_toys(detector):
    """Grounding DINO (no NMS of its own) can give one object to two queries; those
    duplicates (IoU > 0.5) would become two outlines of one thing, so they merge. A pile of toys
    of one kind, each overlapping its neighbours (IoU 0.45 < 0.5), keeps every toy, and a box
    of another label on a toy is not a duplicate."""
    pile = [[0.200 + 0.075 * i, 0.5, 0.2, 0.4] for i in range(4)]
    duplicate = [0.201, 0.5, 0.2, 0.4]  # the first toy again, from another query
    boxes = torch.tensor([*pile, duplicate, duplicate])
    xyxy = box_convert(boxes, "cxcywh", "xyxy")
    ious = box_iou(xyxy, xyxy)
    assert all(0.45 < float(ious[i, i + 1]) < 0.5 for i in range(3))  # touching toys
    assert float(ious[0, 4]) > 0.95  # the duplicate
    scores = torch.tensor([[0.9, 0.0], [0.8, 0.0], [0.7, 0.0], [0.6, 0.0],
                           [0.85, 0.0],   # "toy" again, lower than the first toy's 0.9
                           [0.0, 0.5]])   # "block" on the first toy
    found = detector._select(boxes, scores, ["toy", "block"], (1000, 1000), 20)
    assert [(d.label, round(d.score, 2)) for d in found] == [
        ("toy", 0.9), ("toy", 0.8), ("toy", 0.7), ("toy", 0.6), ("block", 0.5)]
