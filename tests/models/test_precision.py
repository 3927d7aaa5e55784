"""Weights stored in the autocast dtype give the outputs autocast gives with float32 weights,
and a CPU worker keeps triton (a GPU compiler) out of its memory."""

from __future__ import annotations

import subprocess
import sys

import torch

from models.detector import GroundingDinoDetector
from models.precision import store_for_autocast
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
    assert torch.equal(want, got)
    assert store_for_autocast(_Tiny(), None) == 0  # float32: nothing changes


def test_detector_in_bfloat16_stores_its_weights_so_and_keeps_its_outputs(grounding_dino_dir):
    """The detector built with precision="bfloat16" (weights stored in bfloat16) returns the
    exact outputs of the same weights kept in float32 and autocast to bfloat16."""
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
    assert torch.equal(boxes_a, boxes_b) and torch.equal(scores_a, scores_b)
    assert stored.detect(photo, phrases) == autocast_only.detect(photo, phrases)


def test_a_cpu_service_keeps_triton_out():
    """In a fresh process, as in the worker: after ``skip_triton("cpu")`` importing the models
    (torchvision imports torch._dynamo, which would import triton) leaves triton unloaded
    and PyTorch reports it missing; a GPU device leaves it alone."""
    code = (
        "import sys\n"
        "from models.service import skip_triton\n"
        "assert skip_triton('cuda') is False and 'triton' not in sys.modules\n"
        "assert skip_triton('cpu') is True and skip_triton('cpu') is False\n"
        "import models.segmenter, models.detector\n"
        "import torch.utils._triton as t\n"
        "assert sys.modules['triton'] is None and not t.has_triton_package()\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"
