"""Weights stored in the autocast dtype give the outputs autocast gives with float32 weights,
and a CPU worker keeps triton (a GPU compiler) out of its memory."""

from __future__ import annotations

import gc
import subprocess
import sys

import pytest
import torch

from models.detect.detector import GroundingDinoDetector
from models.runtime.precision import store_for_autocast
from tests.models.conftest import open_photo


class _Tiny(torch.nn.Module):
    """Linear, convolution, LayerNorm, an embedding and a tied weight: each kind of tensor
    ``store_for_autocast`` treats differently."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(10, 8)
        self.conv = torch.nn.Conv1d(8, 8, 3, padding=1)
        self.norm = torch.nn.LayerNorm(8)
        self.head = torch.nn.Linear(8, 8)
        self.tied = torch.nn.Linear(8, 8)
        self.tied.weight = self.head.weight
        self.register_buffer("scale", torch.tensor(0.5))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids)  # (B, T, 8)
        x = self.conv(x.transpose(1, 2)).transpose(1, 2)
        return self.tied(self.head(self.norm(x))) * self.scale


def test_store_for_autocast_matches_autocast_on_float32_weights():
    torch.manual_seed(0)
    reference = _Tiny().eval()
    stored = _Tiny().eval()
    stored.load_state_dict(reference.state_dict())
    stored.tied.weight = stored.head.weight
    embed_before = stored.embed.weight.data_ptr()

    converted = store_for_autocast(stored, torch.bfloat16)

    # conv weight+bias, head weight+bias, tied's bias (its weight is head's, counted once)
    assert converted == 5
    assert stored.head.weight.dtype == torch.bfloat16 and stored.tied.weight is stored.head.weight
    assert stored.conv.weight.dtype == torch.bfloat16 and stored.conv.bias.dtype == torch.bfloat16
    assert stored.norm.weight.dtype == torch.float32
    assert stored.embed.weight.dtype == torch.float32 and stored.scale.dtype == torch.float32
    assert stored.embed.weight.data_ptr() != embed_before, "float32 tensors are copied"
    ids = torch.randint(0, 10, (2, 5))
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        want = reference(ids)
        got = stored(ids)
    # Same values in, but bfloat16 kernels may differ by weight layout and CPU (AMX): a
    # rounding step done differently moves a value by at most 2**-8 of it, through two layers.
    torch.testing.assert_close(got, want, rtol=2 * 2**-8, atol=1e-3)
    assert store_for_autocast(_Tiny(), None) == 0  # float32: nothing changes


def test_detector_in_bfloat16_stores_its_weights_so_and_keeps_its_outputs(grounding_dino_dir):
    """The detector built with precision="bfloat16" (weights stored in bfloat16) returns the
    outputs of the same weights kept in float32 and autocast to bfloat16, within bfloat16's
    rounding.

    Not bit for bit: the two are the same maths, not the same arithmetic. Products folded
    ahead of time (``models.patches.fusion`` multiplies projection weights together) are made from
    float32 weights in one model and from bfloat16 ones in the other, and oneDNN picks its
    bfloat16 kernels (and their summation order) by CPU and weight layout; on AMX CPUs the
    two differ. A rounding step done differently moves a value by at most 2**-8 of it
    (bfloat16 keeps 8 significant bits); along the small model's chain of about ten such
    steps that is at most ~3% of outputs in 0-1 (normalised box coordinates, sigmoid
    scores), hence 0.03. A layer left in float32 on one side only moves them by far more
    than bfloat16 rounding does (``test_detector_precision``). On AVX2, AVX512 and
    AVX512-BF16 kernels (``ONEDNN_MAX_CPU_ISA``) the two are identical."""
    stored = GroundingDinoDetector.from_pretrained(grounding_dino_dir, precision="bfloat16")
    autocast_only = GroundingDinoDetector.from_pretrained(grounding_dino_dir, precision="float32")
    autocast_only.autocast_dtype = torch.bfloat16
    linear = stored.model.model.text_backbone.encoder.layer[0].attention.self.query
    assert linear.weight.dtype == torch.bfloat16
    assert autocast_only.model.model.text_backbone.encoder.layer[0].attention.self.query.weight.dtype == torch.float32  # noqa: E501
    photo = open_photo("dog.jpg").convert("RGB")
    pixels = stored._pixels(photo)
    phrases = ["dog", "ball"]
    boxes_a, scores_a = stored._run(pixels, phrases, None)
    boxes_b, scores_b = autocast_only._run(pixels, phrases, None)
    torch.testing.assert_close(boxes_a, boxes_b, rtol=0, atol=0.03)
    torch.testing.assert_close(scores_a, scores_b, rtol=0, atol=0.03)


def test_a_cpu_service_keeps_triton_out():
    """In a fresh process, as in the worker: after ``skip_triton("cpu")`` importing the models
    (torchvision imports torch._dynamo, which would import triton) leaves triton unloaded
    and PyTorch reports it missing; a GPU device leaves it alone."""
    code = (
        "import sys\n"
        "from models.service import skip_triton\n"
        "assert skip_triton('cuda') is False and 'triton' not in sys.modules\n"
        "assert skip_triton('cpu') is True and skip_triton('cpu') is False\n"
        "import models.segment.segmenter, models.detect.detector\n"
        "import torch.utils._triton as t\n"
        "assert sys.modules['triton'] is None and not t.has_triton_package()\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"


def _mapping_kb(path, field: str) -> int:
    """Sum of ``field`` (e.g. "Rss", "Anonymous") over this process's mappings of ``path``."""
    total, inside = 0, False
    for line in open("/proc/self/smaps"):
        head = line.split(maxsplit=5)
        if len(head) >= 5 and "-" in head[0] and len(head[1]) == 4:
            inside = len(head) == 6 and head[5].strip() == str(path.resolve())
        elif inside and line.startswith(field + ":"):
            total += int(line.split()[1])
    return total


def test_drop_file_pages_releases_read_pages_and_spares_written_ones(tmp_path):
    """Pages of a private file mapping that were only read leave the resident set and read
    back the same; a mapping with a written (copy-on-write) page is left alone."""
    import numpy as np

    from models.runtime.allocator import drop_file_pages

    values = np.arange(4 << 20, dtype=np.float32)  # 16 MB
    path = tmp_path / "weights.bin"
    values.tofile(path)
    mapped = np.memmap(path, dtype=np.float32, mode="c")  # MAP_PRIVATE, as torch maps
    assert float(mapped.sum()) == float(values.sum())  # every page read
    assert _mapping_kb(path, "Rss") >= 15 * 1024
    assert drop_file_pages([path]) == mapped.nbytes
    assert _mapping_kb(path, "Rss") < 1024
    assert np.array_equal(mapped, values)  # read back from the file
    mapped[123] = -1.0  # a page of our own now (copy-on-write)
    assert _mapping_kb(path, "Anonymous") > 0
    assert drop_file_pages([path]) == 0
    assert mapped[123] == -1.0
    assert drop_file_pages([tmp_path / "not-mapped.bin"]) == 0


def test_detector_in_bfloat16_leaves_only_the_word_embeddings_on_the_weights_file(
    grounding_dino_dir,
):
    # Detectors of earlier tests map the same file; their models sit in reference cycles
    # (the attention modules' installed forwards are methods bound to the modules), so only
    # the cycle collector frees them and their mappings.
    gc.collect()
    stored = GroundingDinoDetector.from_pretrained(grounding_dino_dir, precision="bfloat16")
    files = stored.weights_files
    assert files and all(f.suffix == ".safetensors" for f in files)
    words = stored.model.model.text_backbone.embeddings.word_embeddings.weight
    assert words.dtype == torch.float32
    size_kb = sum(f.stat().st_size for f in files) // 1024
    resident = sum(_mapping_kb(f, "Rss") for f in files)
    assert resident < size_kb // 2, (resident, size_kb)


def test_gpu_library_names_are_told_from_the_cpu_ones():
    from models.runtime.allocator import GPU_LIBRARY

    gpu = ["libcublasLt.so.13", "libnvJitLink.so.13", "libnvrtc.so.13", "libtorch_cuda.so",
           "libc10_cuda.so", "libcudnn_ops.so.9", "libnccl.so.2", "libcusparseLt.so.0"]  # fmt: skip
    cpu = ["libtorch_cpu.so", "libc10.so", "libtorch_python.so", "libc.so.6",
           "libgomp-a34b3233.so.1", "libopenblas.so"]  # fmt: skip
    assert all(GPU_LIBRARY.match(name) for name in gpu)
    assert not any(GPU_LIBRARY.match(name) for name in cpu)


@pytest.mark.skipif(torch.version.cuda is None, reason="a CPU-only torch maps no GPU library")
def test_drop_gpu_library_pages_leaves_their_read_only_pages_out_of_memory():
    """With PyPI's CUDA build imported, its GPU libraries are mapped and partly resident;
    afterwards their never-written mappings hold no resident page, and torch still runs."""
    from pathlib import Path

    from models.runtime.allocator import drop_gpu_library_pages, gpu_library_paths

    paths = gpu_library_paths()
    names = {Path(p).name for p in paths}
    assert any(n.startswith(("libcublas", "libtorch_cuda")) for n in names), names
    assert not any(n.startswith("libtorch_cpu") for n in names)
    resident = sum(_mapping_kb(Path(p), "Rss") for p in paths)
    assert drop_gpu_library_pages() > 0
    after = sum(_mapping_kb(Path(p), "Rss") for p in paths)
    written = sum(_mapping_kb(Path(p), "Anonymous") for p in paths)  # kept: copy-on-write
    assert after <= written + 1024 < resident, (resident, after, written)
    assert float((torch.ones(64, 64) @ torch.ones(64, 64)).sum()) == 64.0**3


def test_service_load_on_cpu_drops_the_gpu_library_pages_once(service_config, monkeypatch):
    import models.service as service_module

    calls = []
    monkeypatch.setattr(service_module, "drop_gpu_library_pages", lambda: calls.append(1) or 0)
    service = service_module.InferenceService(service_config)
    service.load(("everything",))
    assert calls == [1]
    service.load()  # loads Grounding DINO: its import and load read more pages
    assert calls == [1, 1]
    service.load()  # nothing new loaded
    assert calls == [1, 1]
