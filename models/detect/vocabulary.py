"""The words everything mode may name objects with: COCO's 80 classes in a child's words, plus
everyday objects, animals, foods and toys young children meet.

Grounding DINO is open-vocabulary, so each word is both what the model is asked to find and the
name a child hears. COCO names (Lin et al. 2014, arXiv:1405.0312) are kept where a child says
them too, and replaced where a child says something simpler ("couch" -> "sofa", "potted plant"
-> "plant", "dining table" -> "table", "cell phone" -> "phone", "sports ball" -> "ball",
"wine glass" -> "glass", "refrigerator" -> "fridge", "motorcycle" -> "motorbike",
"handbag" -> "bag"). Words a child would confuse in two senses are avoided ("bat").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

# COCO 2017's 80 detection classes, in COCO's order, in a child's words.
COCO_WORDS: tuple[str, ...] = (
    "person", "bicycle", "car", "motorbike", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat",
    "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack",
    "umbrella", "bag", "tie", "suitcase", "frisbee", "skis", "snowboard", "ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "sofa", "plant", "bed",
    "table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "phone", "microwave",
    "oven", "toaster", "sink", "fridge", "book", "clock", "vase", "scissors", "teddy bear",
    "hair dryer", "toothbrush",
)  # fmt: skip

ANIMAL_WORDS: tuple[str, ...] = (
    "rabbit", "duck", "chicken", "pig", "goat", "donkey", "lion", "tiger", "monkey", "fish",
    "frog", "turtle", "snake", "butterfly", "bee", "spider", "ladybird", "snail", "owl",
    "penguin", "dolphin", "whale", "shark", "squirrel", "deer", "fox", "hamster", "parrot",
    "swan", "kangaroo", "panda", "camel", "crab", "octopus", "dinosaur", "puppy", "kitten",
)  # fmt: skip

FOOD_WORDS: tuple[str, ...] = (
    "strawberry", "grapes", "pear", "lemon", "watermelon", "pineapple", "cherry", "peach",
    "tomato", "potato", "corn", "peas", "cheese", "egg", "bread", "cookie", "ice cream", "milk",
    "juice", "rice", "pasta", "chocolate", "sweets", "cupcake", "pancake", "yogurt", "sausage",
    "cereal", "mushroom", "cucumber",
)  # fmt: skip

TOY_WORDS: tuple[str, ...] = (
    "doll", "toy car", "blocks", "puzzle", "balloon", "drum", "robot", "rocking horse", "slide",
    "swing", "spinning top", "marbles", "scooter", "tricycle", "rubber duck", "soft toy",
    "xylophone", "guitar", "piano", "trumpet", "bucket", "spade", "crayon", "paintbrush",
    "paint", "toy train", "letter", "number", "sandcastle", "bubbles",
)  # fmt: skip

EVERYDAY_WORDS: tuple[str, ...] = (
    "door", "window", "lamp", "shoe", "boot", "sock", "hat", "shirt", "dress", "coat",
    "glasses", "pencil", "pen", "paper", "box", "basket", "pillow", "blanket", "towel", "soap",
    "mirror", "bath", "stairs", "fence", "house", "tree", "flower", "grass", "leaf", "rock",
    "sand", "sky", "cloud", "sun", "road", "water", "plate", "pan", "jar", "key", "shelf",
    "cupboard", "drawer", "rug", "curtain", "cushion", "tent", "watch", "wheel", "ladder",
    "flag", "sign", "picture", "camera", "headphones", "computer", "tractor", "fire engine",
    "police car", "ambulance", "digger", "helicopter", "rocket", "pram", "bin", "tap", "brush",
    "comb", "toothpaste", "snowman", "hand", "face",
)  # fmt: skip


def _unique(*groups: Sequence[str]) -> tuple[str, ...]:
    """Concatenate word groups, keeping each word's first occurrence."""
    seen: dict[str, None] = {}
    for group in groups:
        for word in group:
            seen.setdefault(word, None)
    return tuple(seen)


#: Every word, COCO's first (lower-case; 2 words at most; no duplicates).
VOCABULARY: tuple[str, ...] = _unique(
    COCO_WORDS, ANIMAL_WORDS, FOOD_WORDS, TOY_WORDS, EVERYDAY_WORDS
)



def chunk_words(
    words: Sequence[str], count_tokens: Callable[[str], int], max_tokens: int = 256
) -> list[list[str]]:
    """Split ``words`` into consecutive groups whose captions ("cat. dog. ball.") fit the text
    encoder.

    Args:
        words: phrases, in order.
        count_tokens: number of tokens of a caption, special tokens included (e.g.
            ``len(tokenizer(caption)["input_ids"])``).
        max_tokens: the text limit: 256 for Grounding DINO (``config.max_text_len``).

    Returns:
        Groups of words, in order, each caption at most ``max_tokens`` tokens, as few groups
        as greedy filling gives.

    Raises:
        ValueError: one word alone is longer than ``max_tokens``.
    """
    chunks: list[list[str]] = []
    current: list[str] = []
    for word in words:
        candidate = [*current, word]
        if count_tokens(caption_of(candidate)) <= max_tokens:
            current = candidate
            continue
        if not current:
            raise ValueError(f"{word!r} alone is longer than {max_tokens} tokens")
        chunks.append(current)
        current = [word]
        if count_tokens(caption_of(current)) > max_tokens:
            raise ValueError(f"{word!r} alone is longer than {max_tokens} tokens")
    if current:
        chunks.append(current)
    return chunks


def caption_of(words: Sequence[str]) -> str:
    """Grounding DINO's caption for phrases: ``["cat", "teddy bear"]`` -> ``"cat. teddy bear."``
    (phrases separated by ". ", as in the authors' demo)."""
    return ". ".join(words) + "."
