"""The vocabulary everything mode names objects with, and its split into captions that fit
Grounding DINO's text encoder."""

from __future__ import annotations

import pytest

from models.detect.detector import GroundingDinoDetector
from models.detect.vocabulary import (
    COCO_WORDS,
    VOCABULARY,
    caption_of,
    chunk_words,
)
from models.result import UNSURE_LABEL


def test_vocabulary_is_child_sized_and_covers_coco():
    assert 150 <= len(VOCABULARY) <= 250
    assert len(COCO_WORDS) == 80 and set(COCO_WORDS) <= set(VOCABULARY)
    assert len(set(VOCABULARY)) == len(VOCABULARY), "no word twice"
    for word in VOCABULARY:
        assert word == word.strip().lower() and 1 <= len(word.split()) <= 2
        assert "." not in word and "," not in word  # would split the caption
    # a child's words, not COCO's
    assert {"sofa", "plant", "table", "phone", "ball", "teddy bear"} <= set(VOCABULARY)
    assert not {"couch", "potted plant", "dining table", "cell phone"} & set(VOCABULARY)
    assert UNSURE_LABEL not in VOCABULARY


def test_chunks_keep_order_and_fit_the_limit():
    words = ["cat", "teddy bear", "dog", "ice cream", "ball"]
    count = lambda caption: len(caption.split()) + 2  # noqa: E731  (words + [CLS], [SEP])
    chunks = chunk_words(words, count, max_tokens=5)
    assert [w for chunk in chunks for w in chunk] == words
    assert all(count(caption_of(chunk)) <= 5 for chunk in chunks)
    assert chunks == [["cat", "teddy bear"], ["dog", "ice cream"], ["ball"]]
    assert caption_of(["cat", "teddy bear"]) == "cat. teddy bear."
    with pytest.raises(ValueError, match="longer than"):
        chunk_words(["a b c d e f g"], count, max_tokens=6)


def test_whole_vocabulary_fits_the_real_tokenizer_in_few_chunks(grounding_dino_dir):
    detector = GroundingDinoDetector.from_pretrained(grounding_dino_dir)
    chunks = chunk_words(VOCABULARY, detector.count_tokens, detector.max_text_len)
    assert [w for chunk in chunks for w in chunk] == list(VOCABULARY)
    assert all(detector.count_tokens(caption_of(c)) <= detector.max_text_len for c in chunks)
    assert len(chunks) <= 4
