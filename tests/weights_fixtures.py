"""Random-weight model checkpoints for tests (a pytest plugin: ``pytest_plugins =
["tests.weights_fixtures"]``).

Real weights cannot be downloaded in CI, so the tests build architectures with random
weights, write them to temporary directories in the released formats, and load them only
through the real loaders (``models.runtime.weights.resolve_*``,
``MobileSamSegmenter.from_checkpoint``, ``GroundingDinoDetector.from_pretrained``,
``OmDetTurboDetector.from_pretrained``).
They are never the official files, so
results made with them are labelled "unverified" and are only accepted with
``allow_unverified_weights=True``.

Fixtures (session-scoped):
    mobile_sam_checkpoint: Path of a MobileSAM vit_t state_dict ``.pt`` (torch.manual_seed(0)).
    grounding_dino_dir: directory with a SMALL Grounding DINO (tiny Swin, tiny BERT, one
        encoder and decoder layer), its tokenizer and processor (``save_pretrained``).
    omdet_turbo_dir: directory with a SMALL OmDet-Turbo (the released Swin-T backbone at 64 px,
        a one-layer CLIP text tower, one decoder layer, 20 queries), its CLIP tokenizer and
        processor (``save_pretrained``).
    service_config: ``ServiceConfig`` pointing at all three, ``allow_unverified_weights=True``.
    sam2_video_dir: directory with a SMALL ``Sam2VideoModel`` (SAM 2.1 hiera-tiny's layout,
        narrower: 16-channel first stage, one memory-attention layer), ``save_pretrained``.
    video_service_config: ``service_config`` plus that video model, seen at 256 px.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from models.config import ServiceConfig

# Word pieces of the test vocabulary: enough for the prompts the tests use.
WORDS = (
    "a an the and of with on in my is it this that to "
    "cat cats dog dogs ball balls bear bears teddy car cars bicycle bicycles bike person "
    "people letter letters child children tree trees house flower flowers toy toys cup "
    "book chair table sky grass sun red blue green big small"
).split()
# Grounding DINO (transformers) hard-codes the bert-base-uncased ids of its delimiter tokens
# ([CLS]=101, [SEP]=102, "."=1012, "?"=1029, SPECIAL_TOKENS in modeling_grounding_dino.py),
# so the small vocabulary keeps those ids and fills the gaps with [unusedN] entries.
FIXED_IDS = {
    0: "[PAD]",
    100: "[UNK]",
    101: "[CLS]",
    102: "[SEP]",
    103: "[MASK]",
    1012: ".",
    1029: "?",
}


def write_vocab(path: Path) -> Path:
    """Write a BERT ``vocab.txt`` (one token a line, line number = id) and return its path:
    ``FIXED_IDS`` at their bert-base-uncased ids, [unusedN] up to id 1029, then the words."""
    tokens = [FIXED_IDS.get(i, f"[unused{i}]") for i in range(max(FIXED_IDS) + 1)]
    tokens += [",", "!", "'", "-", *WORDS, "##s", "##es", "##y", "##ing"]
    path.write_text("\n".join(tokens) + "\n")
    return path


def build_mobile_sam_checkpoint(path: Path, seed: int = 0) -> Path:
    """Save the state_dict of mobile_sam's vit_t with random init (``torch.manual_seed(seed)``)
    to ``path`` (~40 MB, same architecture and format as the released mobile_sam.pt)."""
    import torch

    from models.segment.segmenter import import_mobile_sam

    mobile_sam = import_mobile_sam()
    torch.manual_seed(seed)
    model = mobile_sam.sam_model_registry["vit_t"]()
    torch.save(model.state_dict(), path)
    return path


def build_grounding_dino_dir(path: Path, seed: int = 0) -> Path:
    """Write a small random-weight Grounding DINO with tokenizer and processor to ``path``.

    Loadable by ``AutoProcessor.from_pretrained(path)`` and
    ``GroundingDinoForObjectDetection.from_pretrained(path, local_files_only=True)``.
    """
    import torch
    from transformers import (
        BertConfig,
        BertTokenizerFast,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
        SwinConfig,
    )

    path.mkdir(parents=True, exist_ok=True)
    vocab_dir = path / "vocab-src"
    vocab_dir.mkdir(exist_ok=True)
    vocab = write_vocab(vocab_dir / "vocab.txt")
    tokenizer = BertTokenizerFast.from_pretrained(str(vocab_dir), do_lower_case=True)
    vocab_size = len(vocab.read_text().splitlines())
    backbone = SwinConfig(
        embed_dim=16,
        depths=[1, 1, 1, 1],
        num_heads=[1, 1, 2, 2],
        window_size=7,
        out_indices=[2, 3, 4],
    )
    text = BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
    )
    config = GroundingDinoConfig(
        backbone_config=backbone,
        text_config=text,
        d_model=32,
        encoder_layers=1,
        decoder_layers=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        num_queries=50,
        encoder_n_points=2,
        decoder_n_points=2,
    )
    torch.manual_seed(seed)
    model = GroundingDinoForObjectDetection(config).eval()
    model.save_pretrained(path)
    processor = GroundingDinoProcessor(
        image_processor=GroundingDinoImageProcessor(), tokenizer=tokenizer
    )
    processor.save_pretrained(path)
    for leftover in vocab_dir.iterdir():
        leftover.unlink()
    vocab_dir.rmdir()
    return path


def build_omdet_turbo_dir(path: Path) -> Path:
    """Write a small random-weight OmDet-Turbo with its processor to ``path``
    (``bench.detector_models.build_random("omdet-turbo-tiny", tiny=True)``: seeded, a CLIP BPE
    tokenizer holding the vocabulary's words, the released checkpoint's processor settings).

    Loadable by ``AutoProcessor.from_pretrained(path)`` and
    ``OmDetTurboForObjectDetection.from_pretrained(path, local_files_only=True)``.
    """
    from bench.detector_models import build_random

    return build_random("omdet-turbo-tiny", path, tiny=True)


def build_sam2_video_dir(path: Path, seed: int = 0) -> Path:
    """Write a small random-weight ``Sam2VideoModel`` to ``path`` (~20 MB): SAM 2.1
    hiera-tiny's blocks and windows with a quarter of its channels, one memory-attention
    layer, small MLPs. Loadable by ``models.video.sam2.load_sam2_video``."""
    import torch
    from transformers import Sam2VideoConfig, Sam2VideoModel

    config = Sam2VideoConfig()
    backbone = config.vision_config.backbone_config
    backbone.hidden_size = 16
    backbone.embed_dim_per_stage = [16, 32, 64, 128]
    backbone.num_attention_heads_per_stage = [1, 1, 2, 2]
    config.vision_config.backbone_channel_list = [128, 64, 32, 16]
    config.memory_attention_num_layers = 1
    config.memory_attention_feed_forward_hidden_size = 64
    config.mask_decoder_config.mlp_dim = 64
    config.mask_decoder_config.iou_head_hidden_dim = 32
    torch.manual_seed(seed)
    Sam2VideoModel(config).eval().save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def sam2_video_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory of a small random-weight Sam2VideoModel (not the official weights)."""
    return build_sam2_video_dir(tmp_path_factory.mktemp("sam2-video"))


@pytest.fixture(scope="session")
def video_service_config(service_config: ServiceConfig, sam2_video_dir: Path) -> ServiceConfig:
    """``service_config`` with the small video model, tracking at 256 px."""
    from dataclasses import replace

    return replace(service_config, sam2_video_model=str(sam2_video_dir), video_work_size=256)


@pytest.fixture(scope="session")
def mobile_sam_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of a random-init MobileSAM vit_t state_dict (not the official weights)."""
    return build_mobile_sam_checkpoint(tmp_path_factory.mktemp("mobile-sam") / "mobile_sam.pt")


@pytest.fixture(scope="session")
def grounding_dino_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory of a small random-weight Grounding DINO (not the official weights)."""
    return build_grounding_dino_dir(tmp_path_factory.mktemp("grounding-dino"))


@pytest.fixture(scope="session")
def omdet_turbo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory of a small random-weight OmDet-Turbo (not the official weights)."""
    return build_omdet_turbo_dir(tmp_path_factory.mktemp("omdet-turbo"))


@pytest.fixture(scope="session")
def service_config(
    tmp_path_factory: pytest.TempPathFactory,
    mobile_sam_checkpoint: Path,
    grounding_dino_dir: Path,
    omdet_turbo_dir: Path,
) -> ServiceConfig:
    """ServiceConfig using the three random-weight models, with unverified weights allowed.

    One torch thread: test runs share the CPUs with other processes, and with two OpenMP
    threads on two busy cores every parallel op waits for a descheduled thread (measured
    3-10x slower than one thread under load).
    """
    return ServiceConfig(
        model_dir=tmp_path_factory.mktemp("model-dir"),
        mobile_sam_checkpoint=mobile_sam_checkpoint,
        grounding_dino_model=str(grounding_dino_dir),
        omdet_turbo_model=str(omdet_turbo_dir),
        allow_unverified_weights=True,
        num_threads=1,
    )
