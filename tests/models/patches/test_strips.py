"""Encoding in strips gives the image embedding the whole-image encoder gives."""

from __future__ import annotations

import pytest
import torch

from models.patches import strips
from models.patches.strips import encode_image
from models.segment.segmenter import import_mobile_sam


@pytest.fixture(scope="module")
def encoder() -> torch.nn.Module:
    """MobileSAM's TinyViT at full size (1024 px input), random weights, channels_last as the
    segmenter runs it.

    The weights are made to carry the input through: at initialization each MBConv block's
    last BatchNorm scales by 0 (the blocks, and their 3x3 halo, would be invisible) and
    PyTorch's default convolution init shrinks the signal at every layer (a halo one row
    short then changes the output by ~2e-6 of its scale, below float noise). With
    convolutions N(0, 1/fan_in) and random BatchNorm, it changes the output by 1e-3 to 1e-2.
    """
    torch.manual_seed(0)
    model = import_mobile_sam().sam_model_registry["vit_t"]().image_encoder.eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Conv2d):
                module.weight.normal_(0.0, module.weight[0].numel() ** -0.5)
            elif isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0.0, 0.1)
                module.running_mean.normal_(0.0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    return model.to(memory_format=torch.channels_last)


def _embedded(encoder: torch.nn.Module, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(pixels as channels_last, the whole-image embedding (1, 256, 64, 64))."""
    pixels = pixels.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        return pixels, encoder(pixels)


@pytest.fixture(scope="module")
def noise(encoder) -> tuple[torch.Tensor, torch.Tensor]:
    """Random pixels (content right at every strip boundary) and their embedding."""
    return _embedded(
        encoder, torch.randn(1, 3, 1024, 1024, generator=torch.Generator().manual_seed(1))
    )


@pytest.fixture(scope="module")
def padded_photo(encoder) -> tuple[torch.Tensor, torch.Tensor]:
    """A landscape photo as ``Sam.preprocess`` pads it (content in the top 683 rows, zeros
    below: a strip boundary in the padding, the bottom border all zeros) and its embedding."""
    pixels = torch.zeros(1, 3, 1024, 1024)
    pixels[:, :, :683] = torch.randn(1, 3, 683, 1024, generator=torch.Generator().manual_seed(2))
    return _embedded(encoder, pixels)


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """Max abs difference relative to the output scale (max abs of ``b``)."""
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize("count", [2, 3, 8])
@pytest.mark.parametrize("inputs", ["noise", "padded_photo"])
def test_strips_match_whole_image(encoder, request, inputs, count):
    pixels, whole = request.getfixturevalue(inputs)
    with torch.inference_mode():
        result = encode_image(encoder, pixels, strips=count)
    assert result.shape == whole.shape == (1, 256, 64, 64)
    assert _max_diff(result, whole) <= 1e-5


@pytest.mark.parametrize(("top", "bottom"), [(8, 0), (0, 1)], ids=["top-8", "bottom-1"])
def test_too_small_halo_changes_the_embedding(encoder, noise, monkeypatch, top, bottom):
    """A window one map row (8 pixel rows) short at the top, or one pixel row short at the
    bottom, changes the result: the tests above would notice a wrong halo. (At the top the
    halo is 15 rows rounded up to 16 for the stride, so 1 to 6 rows fewer change nothing.)"""
    pixels, whole = noise
    real = strips.input_rows

    def short(convs, first, stop):
        need_top, need_bottom = real(convs, first, stop)
        return need_top + top, need_bottom - bottom

    monkeypatch.setattr(strips, "input_rows", short)
    with torch.inference_mode():
        result = encode_image(encoder, pixels, strips=4)
    assert _max_diff(result, whole) > 1e-4  # 10x the tolerance above


def test_halo_from_the_layer_structure(encoder):
    """Rows [a, b) of the 128-row map need pixel rows [8a - 15, 8b + 8)."""
    convs = strips._stem_convs(encoder)
    assert strips.input_rows(convs, 32, 64) == (8 * 32 - 15, 8 * 64 + 8)


class _NotTinyViT(torch.nn.Module):
    """Some other image encoder: counts its calls."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.calls = 0

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.conv(pixels)


def test_other_encoders_are_called_as_they_are():
    other = _NotTinyViT().eval()
    pixels = torch.randn(1, 3, 32, 32)
    with torch.inference_mode():
        result = encode_image(other, pixels, strips=4)
        assert torch.equal(result, other.conv(pixels))
    assert other.calls == 1


def test_tinyvit_in_training_mode_is_called_as_it_is(encoder, monkeypatch):
    """Training-mode BatchNorm normalizes over the whole image, so strips would differ: the
    class's own forward runs (the instance's may be :func:`strips.strips_forward` itself)."""
    calls = []
    def forward(self, pixels):
        return calls.append(pixels) or pixels

    monkeypatch.setattr(type(encoder), "forward", forward)
    encoder.train()
    try:
        pixels = torch.zeros(1, 3, 1024, 1024)
        assert encode_image(encoder, pixels, strips=4) is pixels
    finally:
        encoder.eval()
    assert len(calls) == 1


def test_zero_strips_is_an_error(encoder):
    with pytest.raises(ValueError, match="strips"):
        encode_image(encoder, torch.zeros(1, 3, 1024, 1024), strips=0)
