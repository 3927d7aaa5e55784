"""Grounding DINO detector on the small random-weight model: labels are the asked phrases,
boxes are photo pixels, duplicates are gone."""

from __future__ import annotations

import pytest
import torch
from torchvision.ops import box_iou

from models.detector import GroundingDinoDetector
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

    from models.detector import quiet_loading

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
