"""Prompt parsing: what a parent types becomes the phrases Grounding DINO looks for."""

from __future__ import annotations

import pytest

from models.errors import BadPromptError, ModelError
from models.prompts import MAX_PHRASES, MAX_PROMPT_CHARS, parse_prompt, phrases_of, prompt_text


@pytest.mark.parametrize(
    "text",
    ["cat, ball", "cat . ball", "cat. ball", "cat.ball", "Cat,Ball.", "  cat ;ball  ", "cat\nball"],
)
def test_both_separators_give_the_same_phrases(text):
    assert parse_prompt(text) == ["cat", "ball"]


def test_phrases_are_lowercased_collapsed_and_deduplicated_in_order():
    assert parse_prompt("Teddy   Bear, dog, teddy bear,\tRED  car, DOG") == [
        "teddy bear",
        "dog",
        "red car",
    ]


def test_question_marks_end_a_phrase():
    assert parse_prompt("where is the cat? the dog!") == ["where is the cat", "the dog"]


@pytest.mark.parametrize("text", ["", "   ", " , . ;", "\n\n"])
def test_empty_prompt_is_refused(text):
    with pytest.raises(BadPromptError, match="what to look for"):
        parse_prompt(text)


def test_too_long_prompt_is_refused():
    with pytest.raises(BadPromptError, match="too long"):
        parse_prompt("cat " * (MAX_PROMPT_CHARS // 4 + 1))
    assert parse_prompt("a" * MAX_PROMPT_CHARS) == ["a" * MAX_PROMPT_CHARS]


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\x7f"])
def test_control_characters_are_refused(char):
    with pytest.raises(BadPromptError, match="control characters"):
        parse_prompt(f"cat{char}, ball")


def test_too_many_phrases_are_refused():
    words = [f"thing{i}" for i in range(MAX_PHRASES + 1)]
    with pytest.raises(BadPromptError, match=f"at most {MAX_PHRASES}"):
        parse_prompt(", ".join(words))
    assert len(parse_prompt(", ".join(words[:MAX_PHRASES]))) == MAX_PHRASES


def test_bad_prompt_error_is_a_model_error_and_a_value_error():
    with pytest.raises(ModelError):
        parse_prompt("")
    with pytest.raises(ValueError):
        parse_prompt("")


@pytest.mark.parametrize(
    "text", ["Cat, ball", "teddy bear . bear", "car, bicycle. person", "  toy   car;dog!\nhat", "a"]
)
def test_stored_prompt_gives_back_the_parsed_phrases(text):
    """The upload stores ``prompt_text(parse_prompt(text))``; the worker reads the phrases back
    with ``phrases_of``, without parsing again: the same list, in the same order."""
    phrases = parse_prompt(text)
    assert phrases_of(prompt_text(phrases)) == phrases
    assert parse_prompt(prompt_text(phrases)) == phrases  # the stored text is its own parse
