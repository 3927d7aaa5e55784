"""Which floating-point arithmetic a model runs in on this machine."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported only when a model is loaded (tests/models/test_imports.py)
    import torch

#: Accepted values of ``MODEL_PRECISION`` / ``ServiceConfig.precision``.
PRECISIONS = ("auto", "float32", "bfloat16")

# CPU flags (Linux /proc/cpuinfo) of native bfloat16 matrix arithmetic: AVX512-BF16 (Intel
# Cooper Lake and later, AMD Zen 4 and later) and AMX-BF16 (Intel Sapphire Rapids and later).
# oneDNN runs PyTorch's bfloat16 matrix products with them; without them bfloat16 is emulated
# and slower than float32.
_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def native_bfloat16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """True when this CPU multiplies bfloat16 natively (see ``_BF16_FLAGS``).

    Args:
        cpuinfo: the Linux CPU description to read (a test may pass its own file).

    Returns:
        False when the file is missing or unreadable (non-Linux systems): float32 is the
        safe choice there.
    """
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            return bool(_BF16_FLAGS & set(line.split(":", 1)[-1].split()))
    return False


def autocast_dtype(precision: str, device: str = "cpu") -> torch.dtype | None:
    """The dtype to autocast to for a precision setting, or None for plain float32.

    Args:
        precision: one of ``PRECISIONS``.
        device: torch device string; "auto" picks bfloat16 only on a CPU with native support
            (CUDA devices keep float32 here: not measured).

    Raises:
        ValueError: unknown precision.
    """
    import torch

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "bfloat16":
        return torch.bfloat16
    if precision == "auto" and torch.device(device).type == "cpu" and native_bfloat16():
        return torch.bfloat16
    return None


def autocast(device_type: str, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """``torch.autocast(device_type, dtype)`` for a dtype from :func:`autocast_dtype`, or a
    context that changes nothing when it is None (float32).

    Args:
        device_type: "cpu" or "cuda" (``torch.device.type``).
        dtype: e.g. ``torch.bfloat16``, or None.
    """
    import torch

    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=dtype)
