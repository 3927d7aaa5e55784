"""The detectors ``bench.detectors`` compares: what is published about each checkpoint
(``PUBLISHED``), its full-size config (:func:`build_config`), random weights and a tokenizer
built locally (:func:`build_random`, :func:`clip_tokenizer`, :func:`bert_tokenizer`), and one
:class:`Runner` per architecture that times its first pass, new words on a photo seen and the
whole-vocabulary pass, reusing what the architecture allows."""

from __future__ import annotations

import copy
import shutil
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bench.runs import PROMPTS

#: The detectors compared, in table order.
NAMES = ("grounding-dino-tiny", "omdet-turbo-tiny", "owlv2-base", "d-fine-small",
         "rt-detr-v2-r18")  # fmt: skip
#: The words asked about a photo already seen ("asking again: new words").
NEW_WORDS = ("cup", "book")


@dataclass(frozen=True)
class Published:
    """What is published about a detector's released checkpoint (quoted, not measured).

    Attributes:
        checkpoint: the Hugging Face repository whose architecture is measured.
        licence: licence of the released weights, as their model card or repository declares.
        coco_ap: box AP on COCO val2017 (zero-shot for open-vocabulary detectors, i.e. without
            COCO's training images; supervised for closed-set ones); None if not published.
        lvis_ap: zero-shot box AP on LVIS minival (None if not published or not zero-shot).
        source: where the figures come from (paper and table, or model card).
        work_size: the input size the model was trained at, as it is fed here.
        open_vocabulary: False for a detector of COCO's fixed 80 classes.
    """

    checkpoint: str
    licence: str
    coco_ap: float | None
    lvis_ap: float | None
    source: str
    work_size: str
    open_vocabulary: bool = True


PUBLISHED = {
    "grounding-dino-tiny": Published(
        "IDEA-Research/grounding-dino-tiny", "Apache-2.0", 48.4, 27.4,
        "Liu et al., Grounding DINO (arXiv:2303.05499): COCO zero-shot, Table 2 and the "
        "IDEA-Research/GroundingDINO README (Swin-T, O365+GoldG+Cap4M); LVIS minival AP 27.4 "
        "(APr 18.1), Table 3",
        "shortest edge 512, longest 853 (the service's; trained at shortest edges 480-800)"),
    "omdet-turbo-tiny": Published(
        "omlab/omdet-turbo-swin-tiny-hf", "Apache-2.0", 42.5, 30.3,
        "Zhao et al., Real-time Transformer-based Open-Vocabulary Detection with Efficient "
        "Fusion Head (arXiv:2403.06892); om-ai-lab/OmDet README model zoo (zero-shot COCO "
        "and LVIS, Swin-T, O365+GoldG)",
        "640x640"),
    "owlv2-base": Published(
        "google/owlv2-base-patch16-ensemble", "Apache-2.0", None, None,
        "Minderer et al., Scaling Open-Vocabulary Object Detection (arXiv:2306.09683); "
        "google-research/scenic owl_vit README: 'OWLv2 CLIP B/16 ST/FT ens' LVIS AP 43.9, "
        "APr 40.5 (LVIS val; fine-tuned on LVIS base classes, so only APr is zero-shot); no "
        "zero-shot COCO AP found for this checkpoint",
        "960x960 (padded to a square)"),
    "d-fine-small": Published(
        "ustc-community/dfine-small-coco", "Apache-2.0", 48.5, None,
        "Peng et al., D-FINE (arXiv:2410.13842); Peterande/D-FINE README model zoo "
        "(D-FINE-S, COCO val2017, supervised on COCO)",
        "640x640", open_vocabulary=False),
    "rt-detr-v2-r18": Published(
        "PekingU/rtdetr_v2_r18vd", "Apache-2.0", 47.9, None,
        "Lv et al., RT-DETRv2 (arXiv:2407.17140); lyuwenyu/RT-DETR rtdetrv2_pytorch README "
        "(RT-DETRv2-S, COCO val2017, supervised on COCO)",
        "640x640", open_vocabulary=False),
}

# Input normalisation of each checkpoint's image processor (0-1 RGB, per channel).
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
CLIP_NORM = ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))
NO_NORM = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))


# ---------------------------------------------------------------------- tokenizers


def tokenizer_words() -> list[str]:
    """Every word the benchmark asks for (the vocabulary, the photos' phrases, the new
    words, OmDet-Turbo's "detect"), split at spaces, sorted, lower-case."""
    from models.detect.vocabulary import VOCABULARY

    phrases = (*VOCABULARY, *(p for asked in PROMPTS.values() for p in asked), *NEW_WORDS,
               "detect")  # fmt: skip
    return sorted({word for phrase in phrases for word in phrase.split()})


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's byte-level BPE alphabet: each of the 256 bytes as a printable character."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
            *range(ord("®"), ord("ÿ") + 1)]  # fmt: skip
    chars, extra = {}, 0
    for b in range(256):
        if b in keep:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return chars


def clip_tokenizer(words: Sequence[str], vocab_size: int = 49408) -> Any:
    """A CLIP BPE tokenizer (``CLIPTokenizer``) of ``vocab_size`` tokens (49,408, CLIP's), built
    locally: the 256 byte symbols alone and word-final (``</w>``), then for each word the
    left-to-right merges that build it, padded with unused tokens, with CLIP's special tokens
    ``<|startoftext|>`` 49406 and ``<|endoftext|>`` 49407 (also padding). Most words come out
    as one token as in CLIP's own vocabulary; a word whose merges collide with another's
    (a shared inner pair merged first) splits into two or three.

    Raises:
        ValueError: the words need more than ``vocab_size`` tokens.
    """
    from transformers import CLIPTokenizer

    alphabet = list(_bytes_to_unicode().values())
    vocab: dict[str, int] = {}
    for token in (*alphabet, *(a + "</w>" for a in alphabet)):
        vocab.setdefault(token, len(vocab))
    merges: list[tuple[str, str]] = []
    for word in words:
        symbols = [_bytes_to_unicode()[b] for b in word.encode()]
        symbols[-1] += "</w>"
        current = symbols[0]
        for symbol in symbols[1:]:
            pair = (current, symbol)
            current += symbol
            if current not in vocab:
                vocab[current] = len(vocab)
                merges.append(pair)
    special = vocab_size - 2
    if len(vocab) > special:
        raise ValueError(f"{len(vocab)} tokens do not fit a vocabulary of {vocab_size}")
    for i in range(len(vocab), special):
        vocab[f"<|unused{i}|>"] = i
    vocab["<|startoftext|>"], vocab["<|endoftext|>"] = special, special + 1
    return CLIPTokenizer(vocab=vocab, merges=merges)


def bert_tokenizer(directory: Path, words: Sequence[str]) -> Any:
    """A BERT WordPiece tokenizer of bert-base-uncased's size (30,522) and special-token ids
    holding ``words`` whole, as ``bench.runs.build_random_weights`` builds it (written to
    ``directory/vocab.txt`` and loaded with ``BertTokenizerFast``)."""
    from transformers import BertTokenizerFast

    fixed = {0: "[PAD]", 100: "[UNK]", 101: "[CLS]", 102: "[SEP]", 103: "[MASK]", 1012: ".",
             1029: "?", 1010: ","}  # fmt: skip
    tokens = [fixed.get(i, f"[unused{i}]") for i in range(1999)] + list(words)
    tokens += [f"[unused{i}]" for i in range(len(tokens), 30522)]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.txt").write_text("\n".join(tokens) + "\n")
    return BertTokenizerFast.from_pretrained(str(directory), do_lower_case=True)


# ---------------------------------------------------------------------- configs


def build_config(name: str, *, tiny: bool = False) -> Any:
    """The transformers config of detector ``name`` (one of ``NAMES``).

    Full size: the published checkpoint's architecture (``PUBLISHED[name].checkpoint``):
    Grounding DINO tiny is ``GroundingDinoConfig()``'s default; OmDet-Turbo tiny is
    ``OmDetTurboConfig()``'s default (timm Swin-T at 640, CLIP B/16 text tower, 900 queries), as
    ``convert_omdet_turbo_to_hf.py`` builds it; OWLv2 base is ``Owlv2Config()`` with the vision
    tower at 960 px (60x60 patches of 16, the checkpoint's ``input_size`` in scenic's
    ``owl_v2_clip_b16.py``); D-FINE small and RT-DETRv2 r18vd are ``get_d_fine_config
    ("dfine_s_coco")`` and ``get_rt_detr_config("rtdetr_v2_r18vd")`` of transformers'
    conversion scripts, 80 classes. ``tiny``: a few-layer, narrow version of each for tests
    (D-FINE and RT-DETRv2 keep their small sizes, fed a small image instead).

    Raises:
        KeyError: unknown name.
    """
    from transformers import (
        BertConfig,
        CLIPTextConfig,
        DFineConfig,
        GroundingDinoConfig,
        OmDetTurboConfig,
        Owlv2Config,
        RTDetrV2Config,
        SwinConfig,
    )

    if name == "grounding-dino-tiny":
        if not tiny:
            return GroundingDinoConfig()
        return GroundingDinoConfig(
            backbone_config=SwinConfig(embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2],
                                       window_size=7, out_indices=[2, 3, 4]),
            text_config=BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                   intermediate_size=64),
            d_model=32, encoder_layers=1, decoder_layers=2, encoder_ffn_dim=64,
            decoder_ffn_dim=64, encoder_attention_heads=2, decoder_attention_heads=2,
            num_queries=50, encoder_n_points=2, decoder_n_points=2)  # fmt: skip
    if name == "omdet-turbo-tiny":
        if not tiny:
            return OmDetTurboConfig(cache_size=1024)  # every vocabulary word's text fits
        # Tiny: the same timm Swin-T backbone (its width cannot be set through the config) at
        # 64 px, everything after it narrow (a decoder width equal to class_embed_dim fails in
        # transformers 5.23: its task_project is then never set).
        return OmDetTurboConfig(
            backbone_config={"model_type": "timm_backbone", "backbone":
                             "swin_tiny_patch4_window7_224", "img_size": 64,
                             "out_indices": (1, 2, 3), "features_only": True,
                             "always_partition": True},
            text_config=CLIPTextConfig(hidden_size=32, num_hidden_layers=1,
                                       num_attention_heads=2, intermediate_size=64,
                                       projection_dim=32),
            image_size=64, text_projection_in_dim=32, text_projection_out_dim=32,
            task_encoder_hidden_dim=64, class_embed_dim=32, num_queries=20,
            encoder_hidden_dim=48, vision_features_channels=(48, 48, 48),
            encoder_attention_heads=2, encoder_dim_feedforward=64, decoder_hidden_dim=48,
            decoder_num_heads=3, decoder_num_layers=1, decoder_dim_feedforward=64,
            decoder_num_points=2,
            cache_size=1024)  # fmt: skip
    if name == "owlv2-base":
        if not tiny:
            return Owlv2Config(vision_config={"image_size": 960, "patch_size": 16})
        small = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                 "intermediate_size": 64}  # fmt: skip
        return Owlv2Config(text_config=small, projection_dim=32,
                           vision_config={**small, "image_size": 96, "patch_size": 16})
    if name == "d-fine-small":
        config = DFineConfig(num_labels=80)
        backbone = config.backbone_config
        backbone.hidden_sizes = [128, 256, 512, 1024]
        backbone.stem_channels = [3, 16, 16]
        backbone.stage_in_channels = [16, 64, 256, 512]
        backbone.stage_mid_channels = [16, 32, 64, 128]
        backbone.stage_out_channels = [64, 256, 512, 1024]
        backbone.stage_num_blocks = [1, 1, 2, 1]
        backbone.stage_downsample = [False, True, True, True]
        backbone.stage_light_block = [False, False, True, True]
        backbone.stage_kernel_size = [3, 3, 5, 5]
        backbone.stage_numb_of_layers = [3, 3, 3, 3]
        backbone.layer_type = "basic"
        backbone.embedding_size = 32
        backbone.use_learnable_affine_block = True
        config.decoder_layers = 3
        config.hidden_expansion = 0.5
        config.depth_mult = 0.34
        config.decoder_n_points = [3, 6, 3]
        config.encoder_in_channels = [256, 512, 1024]
        return config
    if name == "rt-detr-v2-r18":
        config = RTDetrV2Config(num_labels=80)
        config.backbone_config.hidden_sizes = [64, 128, 256, 512]
        config.backbone_config.depths = [2, 2, 2, 2]
        config.backbone_config.layer_type = "basic"
        config.encoder_in_channels = [128, 256, 512]
        config.hidden_expansion = 0.5
        config.decoder_layers = 3
        return config
    raise KeyError(f"unknown detector {name!r}; one of {', '.join(NAMES)}")


def build_random(name: str, directory: Path, *, tiny: bool = False) -> Path:
    """Build detector ``name`` (:func:`build_config`) with random weights
    (``torch.manual_seed(0)``) and save it with its tokenizer (open-vocabulary detectors) to
    ``directory`` with ``save_pretrained`` (safetensors); returns ``directory``.
    Grounding DINO and OmDet-Turbo are saved with their processors, as
    ``GroundingDinoDetector.from_pretrained`` and ``OmDetTurboDetector.from_pretrained`` load
    them (the released checkpoints' layout)."""
    import torch
    import transformers

    directory.mkdir(parents=True, exist_ok=True)
    config = build_config(name, tiny=tiny)
    torch.manual_seed(0)
    model = getattr(transformers, MODEL_CLASSES[name])(config).eval()
    model.save_pretrained(directory)
    if name == "grounding-dino-tiny":
        from transformers import GroundingDinoImageProcessor, GroundingDinoProcessor

        tokenizer = bert_tokenizer(directory / "vocab-src", tokenizer_words())
        GroundingDinoProcessor(image_processor=GroundingDinoImageProcessor(),
                               tokenizer=tokenizer).save_pretrained(directory)  # fmt: skip
        shutil.rmtree(directory / "vocab-src")
    elif name == "omdet-turbo-tiny":
        omdet_turbo_processor(config, clip_tokenizer(tokenizer_words())).save_pretrained(
            directory)
    elif PUBLISHED[name].open_vocabulary:
        clip_tokenizer(tokenizer_words()).save_pretrained(directory / "tokenizer")
    return directory


def omdet_turbo_processor(config: Any, tokenizer: Any) -> Any:
    """OmDet-Turbo's processor as transformers' ``convert_omdet_turbo_to_hf.py`` saves it
    beside the released checkpoint: a ``DetrImageProcessor`` resizing to the model's square
    image size (640) without padding, normalising 0-255 pixels with ImageNet's mean and
    standard deviation times 255, and ``tokenizer`` (CLIP's BPE)."""
    from transformers import DetrImageProcessor, OmDetTurboProcessor

    side = config.image_size if isinstance(config.image_size, int) else config.image_size[0]
    image_processor = DetrImageProcessor(
        size=[side, side], do_rescale=False, image_mean=[123.675, 116.28, 103.53],
        image_std=[58.395, 57.12, 57.375], do_pad=False)  # fmt: skip
    return OmDetTurboProcessor(image_processor=image_processor, tokenizer=tokenizer)


MODEL_CLASSES = {
    "grounding-dino-tiny": "GroundingDinoForObjectDetection",
    "omdet-turbo-tiny": "OmDetTurboForObjectDetection",
    "owlv2-base": "Owlv2ForObjectDetection",
    "d-fine-small": "DFineForObjectDetection",
    "rt-detr-v2-r18": "RTDetrV2ForObjectDetection",
}


# ---------------------------------------------------------------------- runners


def pixels(image: Image.Image, size: tuple[int, int], norm: tuple[Sequence[float], ...],
           *, square: bool = False) -> Any:
    """The photo as a model input: (1, 3, h, w) float32, RGB scaled to 0-1 and normalised with
    ``norm`` = (mean, std) per channel, resized (Pillow, bilinear) to ``size`` (h, w) pixels;
    ``square``: padded first at the bottom and right with grey (0.5) to a square, as OWLv2's
    processor does."""
    import torch

    rgb = image if image.mode == "RGB" else image.convert("RGB")
    if square:
        side = max(rgb.width, rgb.height)
        padded = Image.new("RGB", (side, side), (128, 128, 128))
        padded.paste(rgb, (0, 0))
        rgb = padded
    small = rgb.resize((size[1], size[0]), Image.Resampling.BILINEAR, reducing_gap=2.0)
    array = np.asarray(small, dtype=np.float32) / 255.0
    mean, std = (np.asarray(v, dtype=np.float32) for v in norm)
    return torch.from_numpy(((array - mean) / std).transpose(2, 0, 1).copy())[None]


def top_scores(logits: Any, limit: int = 100) -> Any:
    """The ``limit`` best (query, class) scores of (1, Q, C) logits: sigmoid, then the best
    class per query, top ``limit`` queries; (limit,) float32. The light selection every
    detector here ends with (thresholds and NMS on trained weights cost a few ms)."""
    scores = logits[0].float().sigmoid().max(dim=-1).values
    return scores.topk(min(limit, scores.numel())).values


class Runner:
    """One detector loaded for the benchmark: a photo's first pass, new words on a photo
    seen before, and the whole-vocabulary pass; each returns the number of passes run.

    Subclasses set ``model``, ``work_size`` (h, w) pixels or a description, and implement the
    three passes. Not thread-safe.
    """

    name = ""
    model: Any = None
    dtype: Any = None  # the autocast dtype, None for float32

    def first_pass(self, photo: Image.Image, phrases: Sequence[str], key: str) -> int:
        """``phrases`` on a photo not seen before (image and text computed)."""
        raise NotImplementedError

    def new_words(self, photo: Image.Image, phrases: Sequence[str], key: str) -> int | None:
        """``phrases`` on the photo of ``key`` seen before, reusing its image features; None
        for a closed-set detector."""
        raise NotImplementedError

    def vocabulary(self, photo: Image.Image, words: Sequence[str], key: str) -> int:
        """Every word of ``words`` on a photo not seen before, text encodings cached."""
        raise NotImplementedError

    def drop_text(self) -> None:
        """Forget every cached text encoding."""

    def keep_vocabulary_text(self) -> None:
        """Remember the text encodings cached now (after a vocabulary pass) so that
        :meth:`restore_vocabulary_text` can put them back after :meth:`drop_text`."""

    def restore_vocabulary_text(self) -> None:
        """Put back the text encodings :meth:`keep_vocabulary_text` remembered."""

    def forget(self, key: str) -> None:
        """Drop the cached image features of ``key``."""

    @property
    def parameters(self) -> int:
        """Number of parameters of the model (tied ones once)."""
        return sum(p.numel() for p in self.model.parameters())

    def autocast(self) -> Any:
        """The context the model runs in: inference mode and the precision's autocast."""
        import contextlib

        import torch

        from models.runtime.precision import autocast

        stack = contextlib.ExitStack()
        stack.enter_context(torch.inference_mode())
        stack.enter_context(autocast("cpu", self.dtype))
        return stack


class GroundingDinoRunner(Runner):
    """``models.detect.detector.GroundingDinoDetector`` as the service loads it (patches,
    bfloat16 weight storage, backbone and text caches, its work size)."""

    name = "grounding-dino-tiny"

    def __init__(self, directory: Path, precision: str, tiny: bool) -> None:
        """Load with ``GroundingDinoDetector.from_pretrained`` (tiny: shortest edge 64)."""
        from models.detect.detector import GroundingDinoDetector

        sizes = {"shortest_edge": 64, "longest_edge": 107} if tiny else {}
        self.detector = GroundingDinoDetector.from_pretrained(directory, precision=precision,
                                                              **sizes)  # fmt: skip
        self.model = self.detector.model
        self.dtype = self.detector.autocast_dtype
        self.work_size = "{}x{}".format(*self.detector.work_size((3, 4)))
        self._kept: OrderedDict = OrderedDict()

    def first_pass(self, photo, phrases, key):
        self.detector.forget(key)
        self.detector.detect(photo, list(phrases), key=key)
        return 1

    def new_words(self, photo, phrases, key):
        self.detector.detect(photo, list(phrases), key=key)
        return 1

    def vocabulary(self, photo, words, key):
        from models.detect.vocabulary import chunk_words

        self.detector.forget(key)
        self.detector.detect_vocabulary(photo, words, key=key)
        return len(chunk_words(words, self.detector.count_tokens, self.detector.max_text_len))

    def drop_text(self):
        self.detector._text_cache.entries.clear()

    def keep_vocabulary_text(self):
        self._kept = OrderedDict(self.detector._text_cache.entries)

    def restore_vocabulary_text(self):
        self.detector._text_cache.entries.update(self._kept)

    def forget(self, key):
        self.detector.forget(key)


class ImageCache:
    """A small LRU of per-photo image features (any object) keyed by photo key."""

    def __init__(self, size: int = 4) -> None:
        """Keep at most ``size`` photos."""
        self.size = size
        self.entries: OrderedDict[str, Any] = OrderedDict()

    def get(self, key: str, compute: Callable[[], Any]) -> Any:
        """The features of ``key``, computed by ``compute()`` when not cached."""
        if key in self.entries:
            self.entries.move_to_end(key)
            return self.entries[key]
        value = self.entries[key] = compute()
        while len(self.entries) > self.size:
            self.entries.popitem(last=False)
        return value

    def forget(self, key: str) -> None:
        """Drop ``key``'s features, if any."""
        self.entries.pop(key, None)


def _load(name: str, directory: Path, dtype: Any) -> Any:
    """The saved model of ``name`` (``from_pretrained``, local files only) in eval mode, its
    linear and convolution weights stored in ``dtype`` when autocasting to it
    (``store_for_autocast``, as the service stores Grounding DINO's)."""
    import transformers

    from models.detect.detector import quiet_loading
    from models.runtime.precision import store_for_autocast

    with quiet_loading():
        model = getattr(transformers, MODEL_CLASSES[name]).from_pretrained(
            str(directory), local_files_only=True)
    model.eval()
    store_for_autocast(model, dtype)
    return model


class OmDetTurboRunner(Runner):
    """``models.detect.omdet.OmDetTurboDetector`` as the service loads it (the decoder's
    deformable-attention patch, bfloat16 weight storage): Swin-T backbone and hybrid encoder
    once per photo (cached per key), each word's CLIP text embedding cached per process (the
    model's own LRU, sized for the whole vocabulary), the fusion decoder per question; the whole
    vocabulary is one decoder pass, every word a class of its own."""

    name = "omdet-turbo-tiny"

    def __init__(self, directory: Path, precision: str, tiny: bool) -> None:
        """Load with ``OmDetTurboDetector.from_pretrained``."""
        from models.detect.omdet import OmDetTurboDetector

        self.detector = OmDetTurboDetector.from_pretrained(directory, precision=precision)
        self.model = self.detector.model
        self.dtype = self.detector.autocast_dtype
        self.work_size = "{}x{}".format(*self.detector.work_size())
        self._kept: tuple[Any, Any] | None = None

    def first_pass(self, photo, phrases, key):
        self.detector.forget(key)
        self.detector.detect(photo, list(phrases), key=key)
        return 1

    def new_words(self, photo, phrases, key):
        self.detector.detect(photo, list(phrases), key=key)
        return 1

    def vocabulary(self, photo, words, key):
        self.detector.forget(key)
        self.detector.detect_vocabulary(photo, words, key=key)
        return 1

    def drop_text(self):
        for cache in (self.model.language_cache_class, self.model.language_cache_prompt):
            cache.cache.clear()
            cache.current_load = 0

    def keep_vocabulary_text(self):
        self._kept = (copy.copy(self.model.language_cache_class),
                      copy.copy(self.model.language_cache_prompt))  # fmt: skip
        for cache in self._kept:
            cache.cache = OrderedDict(cache.cache)

    def restore_vocabulary_text(self):
        if self._kept is not None:
            for kept, attr in zip(self._kept, ("language_cache_class", "language_cache_prompt"),
                                  strict=True):  # fmt: skip
                restored = copy.copy(kept)
                restored.cache = OrderedDict(kept.cache)
                setattr(self.model, attr, restored)

    def forget(self, key):
        self.detector.forget(key)


class Owlv2Runner(Runner):
    """OWLv2: the image embedding (ViT-B/16 at 960) and its boxes once per photo (cached;
    neither depends on the words), each word's text embedding cached; new words cost the
    text tower for them and the class head's one matrix product (:meth:`class_logits`)."""

    name = "owlv2-base"
    max_tokens = 16  # OWLv2's text length: one query per word

    def __init__(self, directory: Path, dtype: Any, tiny: bool) -> None:
        """Load model and tokenizer from ``directory``."""
        from transformers import CLIPTokenizer

        self.model = _load(self.name, directory, dtype)
        self.dtype = dtype
        self.tokenizer = CLIPTokenizer.from_pretrained(str(directory / "tokenizer"))
        side = self.model.config.vision_config.image_size
        self.size = (side, side)
        self.work_size = f"{side}x{side}"
        self.images = ImageCache()
        self.texts: dict[str, Any] = {}
        self._kept: dict[str, Any] = {}

    def image_features(self, values: Any) -> tuple[Any, Any]:
        """(image features (1, P, D), boxes (1, P, 4) cxcywh 0-1) of ``pixel_values``
        (1, 3, S, S): ``image_embedder`` then ``box_predictor``, as ``forward`` computes them."""
        import torch

        with self.autocast():
            feature_map = self.model.image_embedder(pixel_values=values)[0]
            b, h, w, d = feature_map.shape
            feats = torch.reshape(feature_map, (b, h * w, d))
            return feats, self.model.box_predictor(feats, feature_map)

    def text_embeddings(self, input_ids: Any, attention_mask: Any) -> Any:
        """L2-normalised text embeddings (N, D) of N tokenised queries (N, 16), as
        ``Owlv2Model.forward`` computes them: text tower, pooled, projected, normalised."""
        import torch

        with self.autocast():
            pooled = self.model.owlv2.text_model(input_ids=input_ids,
                                                 attention_mask=attention_mask).pooler_output
            embeds = self.model.owlv2.text_projection(pooled)
            return embeds / torch.linalg.norm(embeds, ord=2, dim=-1, keepdim=True)

    def class_logits(self, feats: Any, query_embeds: Any, query_mask: Any) -> Any:
        """(1, P, N) logits of N queries (``query_embeds`` (1, N, D), ``query_mask`` (1, N) bool)
        on cached image features (1, P, D): the class head, one matrix product."""
        with self.autocast():
            return self.model.class_predictor(feats, query_embeds, query_mask)[0]

    def _words(self, words: Sequence[str]) -> Any:
        import torch

        missing = [w for w in dict.fromkeys(words) if w not in self.texts]
        if missing:
            encoded = self.tokenizer(missing, padding="max_length", max_length=self.max_tokens,
                                     truncation=True, return_tensors="pt")  # fmt: skip
            embeds = self.text_embeddings(encoded["input_ids"], encoded["attention_mask"])
            self.texts.update(zip(missing, embeds, strict=True))
        return torch.stack([self.texts[w] for w in words])[None]

    def _detect(self, photo: Image.Image, words: Sequence[str], key: str) -> None:
        import torch

        feats, _boxes = self.images.get(
            key, lambda: self.image_features(pixels(photo, self.size, CLIP_NORM, square=True)))
        queries = self._words(words)
        mask = torch.ones(queries.shape[:2], dtype=torch.bool)
        top_scores(self.class_logits(feats, queries, mask))

    def first_pass(self, photo, phrases, key):
        self.images.forget(key)
        self._detect(photo, phrases, key)
        return 1

    def new_words(self, photo, phrases, key):
        self._detect(photo, phrases, key)
        return 1

    def vocabulary(self, photo, words, key):
        self.images.forget(key)
        self._detect(photo, words, key)  # every word is a query of its own: one pass
        return 1

    def drop_text(self):
        self.texts.clear()

    def keep_vocabulary_text(self):
        self._kept = dict(self.texts)

    def restore_vocabulary_text(self):
        self.texts.update(self._kept)

    def forget(self, key):
        self.images.forget(key)


class ClosedSetRunner(Runner):
    """A COCO detector of fixed classes (D-FINE, RT-DETRv2): one forward pass per photo
    scores all 80 classes; no words can be asked."""

    def __init__(self, name: str, directory: Path, dtype: Any, tiny: bool) -> None:
        """Load the model of ``name`` from ``directory`` (tiny: fed 128x128)."""
        self.name = name
        self.model = _load(name, directory, dtype)
        self.dtype = dtype
        self.size = (128, 128) if tiny else (640, 640)
        self.work_size = "{}x{}".format(*self.size)

    def _detect(self, photo: Image.Image) -> None:
        values = pixels(photo, self.size, NO_NORM)
        with self.autocast():
            top_scores(self.model(pixel_values=values).logits)

    def first_pass(self, photo, phrases, key):
        self._detect(photo)
        return 1

    def new_words(self, photo, phrases, key):
        return None

    def vocabulary(self, photo, words, key):
        self._detect(photo)
        return 1


def load_runner(name: str, directory: Path, precision: str, *, tiny: bool = False) -> Runner:
    """The :class:`Runner` of detector ``name`` saved in ``directory`` (:func:`build_random`),
    in ``precision`` (``models.runtime.precision.PRECISIONS``).

    Raises:
        KeyError: unknown name. ValueError: unknown precision.
    """
    from models.runtime.precision import autocast_dtype

    dtype = autocast_dtype(precision, "cpu")
    if name == "grounding-dino-tiny":
        return GroundingDinoRunner(directory, precision, tiny)
    if name == "omdet-turbo-tiny":
        return OmDetTurboRunner(directory, precision, tiny)
    if name == "owlv2-base":
        return Owlv2Runner(directory, dtype, tiny)
    if name in ("d-fine-small", "rt-detr-v2-r18"):
        return ClosedSetRunner(name, directory, dtype, tiny)
    raise KeyError(f"unknown detector {name!r}")
