"""Grounding DINO in bfloat16 (autocast) keeps the float32 model's boxes; the precision
setting is read from the environment and the CPU's flags."""

from __future__ import annotations

import pytest
import torch

from models.config import ServiceConfig
from models.detect.detector import GroundingDinoDetector
from models.runtime.precision import autocast_dtype, native_bfloat16
from tests.models.conftest import assert_bfloat16_boxes_match, open_photo

CPUS = {  # the flags that matter of each CPU kind, and what MODEL_PRECISION=auto gives it
    "avx2-only": ("fpu sse avx2 fma", False),
    "avx512 without bf16": ("fpu sse avx2 avx512f avx512bw avx512_vnni", False),
    "avx512-bf16": ("fpu sse avx2 avx512f avx512_bf16 avx512_vnni", True),
    "amx": ("fpu sse avx2 avx512f avx512_bf16 amx_bf16 amx_tile amx_int8", True),
}


@pytest.mark.parametrize("kind", sorted(CPUS))
def test_native_bfloat16_reads_the_cpu_flags(tmp_path, kind):
    flags, native = CPUS[kind]
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    assert native_bfloat16(cpuinfo, {}) is native
    # oneDNN capped below its bfloat16 kernels: the CPU runs as an older one would
    for cap in ("AVX2", "avx512_core", "AVX512_CORE_VNNI"):
        assert native_bfloat16(cpuinfo, {"ONEDNN_MAX_CPU_ISA": cap}) is False
    for cap in ("AVX512_CORE_BF16", "AVX512_CORE_AMX", "ALL"):
        assert native_bfloat16(cpuinfo, {"ONEDNN_MAX_CPU_ISA": cap}) is native
    assert native_bfloat16(cpuinfo, {"DNNL_MAX_CPU_ISA": "AVX2"}) is False
    assert native_bfloat16(tmp_path / "missing", {}) is False


def test_autocast_dtype_follows_the_setting_and_the_cpu(monkeypatch):
    assert autocast_dtype("float32") is None
    assert autocast_dtype("bfloat16") is torch.bfloat16
    monkeypatch.setattr("models.runtime.precision.native_bfloat16", lambda: False)
    assert autocast_dtype("auto") is None
    monkeypatch.setattr("models.runtime.precision.native_bfloat16", lambda: True)
    assert autocast_dtype("auto") is torch.bfloat16
    with pytest.raises(ValueError, match="precision"):
        autocast_dtype("float16")


def test_config_reads_model_precision(tmp_path):
    base = {"MODEL_DIR": str(tmp_path)}
    assert ServiceConfig.from_env(base).precision == "auto"
    config = ServiceConfig.from_env({**base, "MODEL_PRECISION": "Float32"})
    assert config.precision == "float32"
    with pytest.raises(ValueError, match="MODEL_PRECISION"):
        ServiceConfig.from_env({**base, "MODEL_PRECISION": "int4"})


@pytest.fixture(scope="module")
def full_size_detector(grounding_dino_dir):
    """Grounding DINO tiny's architecture (Swin-T, BERT-base, 900 queries) with random weights
    (seed 0) and the test tokenizer: bfloat16 error grows with depth and width, so parity is
    checked at the released size, not on the small test model."""
    from transformers import AutoProcessor, GroundingDinoConfig, GroundingDinoForObjectDetection

    torch.manual_seed(0)
    model = GroundingDinoForObjectDetection(GroundingDinoConfig())
    processor = AutoProcessor.from_pretrained(str(grounding_dino_dir), local_files_only=True)
    return GroundingDinoDetector(model, processor, precision="float32")


def test_bfloat16_keeps_the_float32_boxes(full_size_detector):
    """The parity rule for a faster runtime: box IoU >= 0.95 with the float32 reference
    on the same weights. Compared per predicted box (all 900 queries), matched to the closest
    box of the bfloat16 run: the two-stage query selection ranks encoder scores that random
    weights saturate (nearly all above 0.9), so equal-scored queries may come in another order.
    """
    detector = full_size_detector
    photo = open_photo("dog.jpg").convert("RGB")
    pixels = detector._pixels(photo)
    phrases = ["dog", "ball", "grass"]
    detector.autocast_dtype = None
    boxes32, scores32 = detector._run(pixels, phrases, None)
    detector.autocast_dtype = torch.bfloat16
    try:
        boxes16, scores16 = detector._run(pixels, phrases, None)
    finally:
        detector.autocast_dtype = None
    assert_bfloat16_boxes_match(boxes32, scores32, boxes16, scores16)
