"""What a photo can be asked: the two modes, and grounded mode's text prompt ("cat, ball" /
"cat . ball") parsed into phrases."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from models.errors import BadPromptError

#: "everything": every object (MobileSAM automatic mask generation, named by the vocabulary);
#: "grounded" (find by name): Grounding DINO boxes for the prompt's phrases, then masks.
MODES = ("everything", "grounded")
MAX_PROMPT_CHARS = 500
MAX_PHRASES = 20

# "," and "." are the two separators people type; Grounding DINO itself uses "." between
# phrases and treats "?" as a delimiter token too (transformers SPECIAL_TOKENS), so "?", "!",
# ";" and line breaks also end a phrase.
_SEPARATORS = re.compile(r"[,.;?!\n\r]+")
_ALLOWED_CONTROL = {"\n", "\r", "\t"}


def parse_prompt(text: str) -> list[str]:
    """Split a prompt into phrases: ``"Cat, ball"``, ``"cat . ball"``, ``"cat. ball"`` ->
    ``["cat", "ball"]``.

    Phrases are lower-cased, inner whitespace collapsed, stripped, and de-duplicated keeping
    the first occurrence. Tabs count as spaces and line breaks as separators.

    Raises:
        BadPromptError: ``text`` is not a string, is empty or only separators, is longer than
            ``MAX_PROMPT_CHARS`` (500) characters, contains other control characters
            (Unicode category Cc), or yields more than ``MAX_PHRASES`` (20) phrases.
    """
    if not isinstance(text, str) or not text.strip():
        raise BadPromptError('Please type what to look for, for example "cat, ball".')
    if len(text) > MAX_PROMPT_CHARS:
        raise BadPromptError(
            f"The text is too long ({len(text)} characters); please keep it under "
            f"{MAX_PROMPT_CHARS}."
        )
    for char in text:
        if unicodedata.category(char) == "Cc" and char not in _ALLOWED_CONTROL:
            raise BadPromptError("The text has invisible control characters; please retype it.")
    phrases: list[str] = []
    for piece in _SEPARATORS.split(text):
        phrase = " ".join(piece.split()).lower()
        if phrase and phrase not in phrases:
            phrases.append(phrase)
    if not phrases:
        raise BadPromptError('Please type what to look for, for example "cat, ball".')
    if len(phrases) > MAX_PHRASES:
        raise BadPromptError(
            f"That is {len(phrases)} things to look for; please ask for at most {MAX_PHRASES}."
        )
    return phrases


def prompt_text(phrases: Sequence[str]) -> str:
    """The stored form of parsed phrases: ``["cat", "ball"]`` -> ``"cat, ball"`` (what the
    photo's ``prompt`` column and a "words" job's params hold, and what the page shows)."""
    return ", ".join(phrases)


def phrases_of(text: str) -> list[str]:
    """The phrases of a stored prompt (:func:`prompt_text`'s inverse, not a parse: stored text
    was parsed on the way in, and a phrase never holds a comma, which
    :func:`parse_prompt` splits on)."""
    return [phrase for phrase in text.split(", ") if phrase]
