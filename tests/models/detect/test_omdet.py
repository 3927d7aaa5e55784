"""OmDet-Turbo as the service runs it: the whole vocabulary in one pass, new words on a photo's
cached encoder features, word embeddings computed once, the authors' box selection (the
small random-weight checkpoint of tests/weights_fixtures.py, loaded by the real loader)."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from models.detect.detector import Detection
from models.detect.omdet import OmDetTurboDetector
from models.detect.vocabulary import VOCABULARY
from models.errors import BadPromptError, ModelError
from tests.models.conftest import Counter, open_photo


@pytest.fixture(scope="module")
def detector(omdet_turbo_dir):
    """The small checkpoint in float32 (its outputs then do not depend on the CPU's kernels
    beyond float32 rounding)."""
    return OmDetTurboDetector.from_pretrained(omdet_turbo_dir, precision="float32")


@pytest.fixture
def photo():
    return open_photo("dog.jpg").convert("RGB")


def counted(detector):
    """Counters on the image backbone, the text tower and the fusion decoder."""
    model = detector.model
    return (Counter(model.vision_backbone), Counter(model.language_backbone),
            Counter(model.decoder))  # fmt: skip


def test_the_whole_vocabulary_is_one_pass_of_every_word(detector, photo):
    backbone, text, decoder = counted(detector)
    scored = []
    decode = detector._decode

    def spy(features, words):
        boxes, scores = decode(features, words)
        scored.append(scores.shape)
        return boxes, scores

    detector._decode = spy
    try:
        found = detector.detect_vocabulary(photo, VOCABULARY, key="vocabulary-pass")
    finally:
        del detector._decode
        for counter in (backbone, text, decoder):
            counter.remove()
    queries = detector.model.config.num_queries
    assert (backbone.runs, decoder.runs) == (1, 1), "one image pass, one decoder pass"
    assert scored == [(queries, len(VOCABULARY))], "every query scored against every word"
    assert found and all(isinstance(d, Detection) and d.label in VOCABULARY for d in found)
    assert all(d.score > detector.box_threshold for d in found)
    assert all(0 <= d.box[0] < d.box[2] <= photo.width for d in found)
    assert all(0 <= d.box[1] < d.box[3] <= photo.height for d in found)
    assert [d.score for d in found] == sorted((d.score for d in found), reverse=True)
    detector.forget("vocabulary-pass")


def test_new_words_on_a_photo_seen_reuse_its_features(detector, photo):
    detector.detect(photo, ["dog", "ball"], key="seen")
    backbone, text, decoder = counted(detector)
    try:
        found = detector.detect(photo, ["cup", "book"], key="seen")
    finally:
        for counter in (backbone, text, decoder):
            counter.remove()
    assert backbone.runs == 0, "the photo's encoder features are reused"
    assert decoder.runs == 1
    assert {d.label for d in found} <= {"cup", "book"}
    assert len(found) <= detector.max_detections
    fresh = detector.detect(photo, ["cup", "book"])  # no key: computed afresh
    assert [d.label for d in found] == [d.label for d in fresh]
    torch.testing.assert_close(torch.tensor([d.box for d in found]),
                               torch.tensor([d.box for d in fresh]), rtol=0, atol=1e-3)
    assert "seen" in detector.cached_keys()
    detector.forget("seen")
    assert "seen" not in detector.cached_keys()


def test_features_are_kept_per_key_in_a_bounded_lru(omdet_turbo_dir, photo):
    detector = OmDetTurboDetector.from_pretrained(omdet_turbo_dir, precision="float32",
                                                  cache_size=2)  # fmt: skip
    for key in ("a", "b", "c"):
        detector.detect(photo, ["dog"], key=key)
    assert detector.cached_keys() == {"b", "c"}
    backbone = Counter(detector.model.vision_backbone)
    try:
        detector.detect(photo, ["cat"], key="c")  # kept: reused
        detector.detect(photo, ["cat"], key="a")  # evicted: computed again
        detector.detect(photo.resize((200, 150)), ["cat"], key="c")  # another size: again
    finally:
        backbone.remove()
    assert backbone.runs == 2


def test_each_word_is_encoded_once_per_process(detector, photo):
    detector.detect_vocabulary(photo.resize((160, 120)), VOCABULARY)  # caches every word
    text = Counter(detector.model.language_backbone)
    try:
        detector.detect_vocabulary(photo, VOCABULARY)
        detector.detect(photo, ["dog", "teddy bear"])  # vocabulary words: cached too
    finally:
        text.remove()
    assert text.runs == 1, "only the new task prompt 'Detect dog, teddy bear.' is encoded"


def test_text_padded_to_the_longest_gives_the_processors_embeddings(detector):
    """CLIP's text tower is causal: padding after a text cannot change it (float32 reordering
    of the shorter matrix products only)."""
    model = detector.model
    words = ["dog", "teddy bear", "fire engine"]
    task = detector.task_prompt(words)
    ours = detector._tokens(words), detector._tokens([task])
    theirs = detector.processor(images=Image.new("RGB", (64, 64)), text=words, task=task,
                                return_tensors="pt")  # fmt: skip
    assert theirs["classes_input_ids"].shape[1] == 77 > ours[0][0].shape[1]

    def embed(class_ids, class_mask, task_ids, task_mask):
        for cache in (model.language_cache_class, model.language_cache_prompt):
            cache.cache.clear()
            cache.current_load = 0
        with torch.inference_mode():
            return model.get_language_embedding(class_ids, class_mask, task_ids, task_mask,
                                                torch.tensor([len(words)]))  # fmt: skip

    got = embed(*ours[0], *ours[1])
    expected = embed(theirs["classes_input_ids"], theirs["classes_attention_mask"],
                     theirs["tasks_input_ids"], theirs["tasks_attention_mask"])  # fmt: skip
    for a, b in zip(got, expected, strict=True):
        assert a.shape == b.shape
        torch.testing.assert_close(a.float(), b.float(), rtol=0, atol=1e-5)


def test_a_long_vocabulary_task_prompt_is_cut_at_77_tokens(detector):
    ids, mask = detector._tokens([detector.task_prompt(VOCABULARY)])
    assert ids.shape == (1, 77) and int(mask.sum()) == 77


def test_selection_is_the_authors(detector):
    """Best (query, word) pairs over the threshold, in photo pixels, NMS per word: a query may
    name two words (both kept for the naming's margin rule); a duplicate box of one word is
    dropped, an overlapping box of another word kept."""
    boxes = torch.tensor([
        [0.25, 0.25, 0.2, 0.2],  # query 0: "dog" 0.9 and "puppy" 0.85
        [0.26, 0.25, 0.2, 0.2],  # query 1: a duplicate of query 0 as "dog" (0.8)
        [0.75, 0.75, 0.1, 0.1],  # query 2: "ball" 0.6
        [0.50, 0.50, 0.1, 0.1],  # query 3: below the threshold
    ])  # fmt: skip
    scores = torch.tensor([[0.9, 0.85, 0.1], [0.8, 0.2, 0.1], [0.1, 0.2, 0.6],
                           [0.2, 0.25, 0.29]])  # fmt: skip
    found = detector._select(boxes, scores, ["dog", "puppy", "ball"], (200, 400), limit=20)
    assert [(d.label, round(d.score, 2)) for d in found] == [
        ("dog", 0.9), ("puppy", 0.85), ("ball", 0.6)]
    assert found[0].box == pytest.approx((60.0, 30.0, 140.0, 70.0))  # cxcywh 0-1 -> xyxy px
    assert found[1].box == found[0].box
    limited = detector._select(boxes, scores, ["dog", "puppy", "ball"], (200, 400), limit=1)
    assert [d.label for d in limited] == ["dog"]


def test_crops_and_small_photos_are_seen_at_the_work_size(detector, photo, monkeypatch):
    seen = []
    backbone = detector.model.vision_backbone
    original = backbone.forward
    monkeypatch.setattr(backbone, "forward", lambda x: seen.append(tuple(x.shape)) or original(x))
    crop = photo.crop((100, 80, 260, 200))  # 160 x 120
    found = detector.detect_vocabulary(crop, VOCABULARY)
    assert seen == [(1, 3, *detector.work_size())]
    assert all(0 <= d.box[0] < d.box[2] <= 160 and 0 <= d.box[1] < d.box[3] <= 120
               for d in found)  # fmt: skip


def test_no_words_is_refused(detector, photo):
    with pytest.raises(BadPromptError):
        detector.detect(photo, [])
    with pytest.raises(ValueError):
        detector.detect_vocabulary(photo, [])


def test_unloadable_directory_is_a_model_error(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelError, match="flask models download"):
        OmDetTurboDetector.from_pretrained(tmp_path)


def test_bfloat16_stores_matrix_weights_in_bfloat16_and_keeps_the_token_table(omdet_turbo_dir,
                                                                              photo):
    detector = OmDetTurboDetector.from_pretrained(omdet_turbo_dir, precision="bfloat16")
    model = detector.model
    assert model.decoder.decoder_class_head[0].weight.dtype == torch.bfloat16
    assert model.get_input_embeddings().weight.dtype == torch.float32
    found = detector.detect(photo, ["dog", "ball"], key=None)
    assert all(d.label in ("dog", "ball") for d in found)
