"""Asking again about a photo already seen: a tapped point on the cached image embedding, new
words (OmDet-Turbo on the photo's cached features), and everything mode's names (OmDet-Turbo's
vocabulary pass; Grounding DINO's where OmDet-Turbo's weights are missing), on the
random-weight checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from models.detect.detector import Detection
from models.detect.vocabulary import VOCABULARY
from models.errors import BadPromptError
from models.result import UNSURE_LABEL
from models.segment.mask import Mask
from tests.models.conftest import Counter, open_photo


@pytest.fixture
def photo():
    return open_photo("dog.jpg").convert("RGB")


def test_point_gives_one_photo_size_mask_containing_the_point(service, photo):
    point = (photo.width / 2, photo.height / 2)
    result = service.segment_point(photo, point, key="point-dog")
    assert (result.width, result.height) == photo.size and result.mode == "point"
    assert result.prompt is None and len(result.objects) == 1
    obj = result.objects[0]
    full = np.asarray(obj.mask)
    assert full.shape == (photo.height, photo.width) and full.dtype == bool
    assert full[int(point[1]), int(point[0])], "the tapped pixel is in the mask"
    assert obj.area == int(full.sum()) > 0
    x0, y0, x1, y1 = obj.box
    assert x0 <= point[0] < x1 and y0 <= point[1] < y1
    assert obj.label in VOCABULARY if obj.named else obj.label == UNSURE_LABEL
    assert 0.0 <= obj.score <= 1.0
    assert {"mask", "name", "total"} <= set(result.timings)
    doc = result.to_json()
    assert doc["objects"][0]["named"] is obj.named


def test_point_reuses_the_cached_embedding_and_names(service, photo, monkeypatch):
    service.analyze(photo, "everything", key="point-cache")  # embeds, detects the vocabulary
    encoder = Counter(service.segmenter.model.image_encoder.neck)  # once per encoding
    vocabulary_passes = []
    for detector in (service.omdet, service.detector):
        monkeypatch.setattr(
            detector, "detect_vocabulary",
            lambda *a, **k: vocabulary_passes.append(1) or [],
        )  # fmt: skip
    try:
        for point in [(100.0, 120.0), (photo.width - 10.0, photo.height - 10.0)]:
            result = service.segment_point(photo, point, key="point-cache")
            assert result.objects[0].mask.shape == (photo.height, photo.width)
    finally:
        encoder.remove()
    assert encoder.runs == 0, "the image encoder is not run again for the same key"
    assert vocabulary_passes == [], "the vocabulary detections are reused too"


def test_point_outside_the_photo_is_a_bad_prompt(service, photo):
    for point in [(-1.0, 10.0), (10.0, photo.height), (float("nan"), 3.0), ("x", 1)]:
        with pytest.raises(BadPromptError):
            service.segment_point(photo, point, key="point-dog")


def test_words_reuse_embedding_and_detector_backbone(service, photo):
    service.analyze(photo, "grounded", ["dog"], key="words-again")
    encoder = Counter(service.segmenter.model.image_encoder.neck)  # once per encoding
    backbone = Counter(service.detector.model.model.backbone.conv_encoder.model)
    try:
        result = service.analyze(photo, "grounded", ["ball", "cat"], key="words-again")
    finally:
        encoder.remove()
        backbone.remove()
    assert result.mode == "grounded" and result.prompt == "ball, cat"
    assert {o.label for o in result.objects} <= {"ball", "cat"}
    assert encoder.runs == 0 and backbone.runs == 0


def test_new_words_run_omdet_turbo_on_the_photos_cached_features(service, photo):
    service.analyze(photo, "everything", key="new-words")  # OmDet-Turbo's vocabulary pass
    encoder = Counter(service.segmenter.model.image_encoder.neck)
    omdet_backbone = Counter(service.omdet.model.vision_backbone)
    omdet_decoder = Counter(service.omdet.model.decoder)
    grounding_dino = Counter(service.detector.model)
    try:
        result = service.analyze(photo, "grounded", ["ball", "cat"], key="new-words",
                                 new_words=True)  # fmt: skip
    finally:
        for counter in (encoder, omdet_backbone, omdet_decoder, grounding_dino):
            counter.remove()
    assert result.mode == "grounded" and result.prompt == "ball, cat"
    assert result.objects and {o.label for o in result.objects} <= {"ball", "cat"}
    for obj in result.objects:
        assert obj.mask.shape == (photo.height, photo.width) and obj.area > 0
    scores = [o.score for o in result.objects]
    assert scores == sorted(scores, reverse=True)
    assert (encoder.runs, omdet_backbone.runs, omdet_decoder.runs) == (0, 0, 1)
    assert grounding_dino.runs == 0, "find by name's detector is not asked"
    assert result.weights["omdet_turbo"] == "unverified"
    service.forget("new-words")
    assert "new-words" not in service.cached_keys()


def test_everything_mode_names_masks_that_a_confident_box_fits(service, monkeypatch):
    small = open_photo("bears.jpg").convert("RGB").resize((517, 362))
    first = service.analyze(small, "everything", key="names")
    assert first.objects
    target = first.objects[0]
    fake = [Detection("teddy bear", 0.9, target.box)]  # a confident box exactly on object 1
    monkeypatch.setattr(service.omdet, "detect_vocabulary", lambda *a, **k: fake)
    service.forget("names")
    result = service.analyze(small, "everything", key="names")
    named = [o for o in result.objects if o.named]
    assert named and all(o.label == "teddy bear" for o in named)
    assert result.objects[0].label == "teddy bear"
    for obj in result.objects:
        if not obj.named:
            assert obj.label == UNSURE_LABEL
    assert result.weights["omdet_turbo"] == "unverified"


def test_the_vocabulary_pass_is_one_omdet_turbo_pass_and_is_kept(service, photo):
    decoder = Counter(service.omdet.model.decoder)
    backbone = Counter(service.omdet.model.vision_backbone)
    try:
        service.analyze(photo, "everything", key="one-pass")
        service.segment_point(photo, (photo.width / 2, photo.height / 2), key="one-pass")
    finally:
        decoder.remove()
        backbone.remove()
    assert (backbone.runs, decoder.runs) == (1, 1), "the tap's name reuses the detections"
    assert "one-pass" in service.omdet.cached_keys()
    service.forget("one-pass")
    assert "one-pass" not in service.omdet.cached_keys()


def test_without_omdet_turbo_grounding_dino_names_and_finds_new_words(
    service_config, tmp_path, caplog
):
    from dataclasses import replace

    from models.service import InferenceService

    svc = InferenceService(replace(service_config, omdet_turbo_model=str(tmp_path / "none")))
    with caplog.at_level("WARNING"):
        svc.load()
    assert svc.omdet is None and svc.detector is not None
    assert "flask models download" in caplog.text and "OMDET_TURBO_MODEL" in caplog.text
    svc.segmenter.everything_settings = service_segmenter_settings(svc)
    photo = Image.new("RGB", (320, 240), (90, 140, 60))
    first = svc.analyze(photo, "everything", key="fallback")
    assert first.objects
    passes = []
    detect_vocabulary = svc.detector.detect_vocabulary
    svc.detector.detect_vocabulary = lambda *a, **k: passes.append(1) or [
        Detection("dog", 0.9, first.objects[0].box)]
    svc.forget("fallback")
    everything, prompts = svc.segmenter.everything, []
    svc.segmenter.everything = lambda *a, boxes=None, **k: (
        prompts.append((boxes, len(passes))) or everything(*a, boxes=boxes, **k))
    named = svc.analyze(photo, "everything", key="fallback")
    svc.detector.detect_vocabulary = detect_vocabulary
    svc.segmenter.everything = everything
    assert prompts == [(None, 0)], "Grounding DINO's slow pass comes after the masks, unused"
    assert passes == [1] and named.objects[0].label == "dog"
    words = svc.analyze(photo, "grounded", ["ball"], key="fallback", new_words=True)
    assert {o.label for o in words.objects} <= {"ball"}
    assert words.weights == {"mobile_sam": "unverified", "grounding_dino": "unverified"}


def test_everything_mode_without_either_detector_is_unnamed(service_config, tmp_path):
    from dataclasses import replace

    from models.service import InferenceService

    svc = InferenceService(replace(service_config, grounding_dino_model=str(tmp_path / "none"),
                                   omdet_turbo_model=str(tmp_path / "none")))  # fmt: skip
    svc.load(("everything",))
    svc.segmenter.everything_settings = service_segmenter_settings(svc)
    result = svc.analyze(Image.new("RGB", (320, 240), (90, 140, 60)), "everything")
    assert result.objects
    assert all(o.label == UNSURE_LABEL and not o.named for o in result.objects)
    assert result.weights == {"mobile_sam": "unverified"}


def service_segmenter_settings(svc):
    """The tests' everything settings (see conftest): small grid, quality filters off."""
    from dataclasses import replace

    return replace(
        svc.segmenter.everything_settings,
        points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0,
    )  # fmt: skip


def test_vocabulary_detections_run_the_backbone_once(service, photo):
    detector = service.detector
    backbone = Counter(detector.model.model.backbone.conv_encoder.model)
    forwards = Counter(detector.model)
    try:
        found = detector.detect_vocabulary(photo, VOCABULARY)
    finally:
        backbone.remove()
        forwards.remove()
    assert forwards.runs >= 2, "the vocabulary does not fit one caption"
    assert backbone.runs == 1
    assert all(d.label in VOCABULARY for d in found)
    assert all(0 <= d.box[0] < d.box[2] <= photo.width for d in found)
    assert detector._backbone_cache.entries == {} or all(
        not k.startswith("__") for k in detector._backbone_cache.entries
    )


def test_cached_backbone_gives_the_same_detections(service, photo):
    detector = service.detector
    fresh = detector.detect(photo, ["dog", "ball"])
    detector.detect(photo, ["cat"], key="parity")
    cached = detector.detect(photo, ["dog", "ball"], key="parity")
    assert [d.label for d in cached] == [d.label for d in fresh]
    assert np.allclose([d.box for d in cached], [d.box for d in fresh], atol=1e-3)
    assert np.allclose([d.score for d in cached], [d.score for d in fresh], atol=1e-5)


def test_vocabulary_captions_are_encoded_once_per_process(service, photo):
    detector = service.detector
    detector.detect_vocabulary(photo.resize((320, 213)), VOCABULARY)  # fills the text cache
    cache = detector._text_cache
    encoded = []
    bert = cache._forward
    cache._forward = lambda *a, **k: encoded.append(1) or bert(*a, **k)
    forwards = Counter(detector.model)
    try:
        first = detector.detect_vocabulary(photo, VOCABULARY)
    finally:
        cache._forward = bert
        forwards.remove()
    assert forwards.runs >= 2 and encoded == [], "BERT did not run again for the same captions"
    detector._text_cache.entries.clear()
    assert detector.detect_vocabulary(photo, VOCABULARY) == first, "same as computed afresh"


def test_point_without_cached_names_is_named_from_a_crop(service, photo, monkeypatch):
    mask = np.zeros((photo.height, photo.width), dtype=bool)
    mask[300:500, 400:700] = True  # the object under the tap: box (400, 300, 700, 500)
    tapped = Mask.from_array(mask)
    monkeypatch.setattr(service.segmenter, "segment_point", lambda *a, **k: (tapped, 0.9))
    crops = []

    def detect_vocabulary(image, words, key=None):
        crops.append(image.size)  # the box grown by a quarter on each side: 450 x 300
        return [Detection("dog", 0.9, (75.0, 50.0, 375.0, 250.0))]  # the box, in the crop

    monkeypatch.setattr(service.omdet, "detect_vocabulary", detect_vocabulary)
    result = service.segment_point(photo, (500.0, 400.0), key="crop-names")
    assert crops == [(450, 300)]
    obj = result.objects[0]
    assert (obj.label, obj.named, obj.box) == ("dog", True, (400.0, 300.0, 700.0, 500.0))


def test_omdet_turbo_boxes_are_everything_modes_first_prompts(service, monkeypatch):
    small = open_photo("bears.jpg").convert("RGB").resize((517, 362))
    order, seen = [], []
    fake = [Detection("teddy bear", 0.9, (20.0, 30.0, 200.0, 300.0)),
            Detection("bear", 0.8, (22.0, 31.0, 201.0, 298.0)),  # the same object, again
            Detection("ball", 0.7, (300.0, 200.0, 360.0, 260.0))]  # fmt: skip
    monkeypatch.setattr(service.omdet, "detect_vocabulary",
                        lambda *a, **k: order.append("vocabulary") or fake)
    everything = service.segmenter.everything

    def spy(*args, boxes=None, **kwargs):
        order.append("masks")
        seen.append(boxes)
        return everything(*args, boxes=boxes, **kwargs)

    monkeypatch.setattr(service.segmenter, "everything", spy)
    result = service.analyze(small, "everything", key="box-prompts")
    service.forget("box-prompts")
    assert order == ["vocabulary", "masks"], "one vocabulary pass, before the masks"
    np.testing.assert_array_equal(seen[0], [[20, 30, 200, 300], [300, 200, 360, 260]])
    assert result.objects and all(o.label in {"teddy bear", "bear", "ball", UNSURE_LABEL}
                                  for o in result.objects)  # fmt: skip


def test_prompt_boxes_ask_each_object_once_best_first_and_at_most_the_limit():
    from models.service import prompt_boxes

    found = [Detection("cat", 0.5, (0.0, 0.0, 10.0, 10.0)),
             Detection("kitten", 0.6, (0.0, 0.0, 10.0, 11.0)),  # the cat, named twice
             Detection("ball", 0.9, (50.0, 50.0, 60.0, 60.0)),
             Detection("cup", 0.4, (20.0, 0.0, 30.0, 10.0))]  # fmt: skip
    np.testing.assert_array_equal(prompt_boxes(found), [[50, 50, 60, 60], [0, 0, 10, 11],
                                                        [20, 0, 30, 10]])  # fmt: skip
    assert prompt_boxes(found, limit=1).shape == (1, 4)
    assert prompt_boxes([]).shape == (0, 4)
