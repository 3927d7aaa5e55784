"""Which floating-point arithmetic a model runs in on this machine."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Collection, Mapping
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


# oneDNN's ISA caps (ONEDNN_MAX_CPU_ISA, or its older name DNNL_MAX_CPU_ISA) that leave its
# native bfloat16 kernels in use; any other cap (SSE41 ... AVX512_CORE_VNNI) makes oneDNN run
# as a CPU without them would, and bfloat16 is then emulated.
_BF16_ISAS = frozenset({"AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE_AMX",
                        "AVX512_CORE_AMX_FP16", "AVX10_1_512", "AVX10_1_512_AMX",
                        "AVX10_1_512_AMX_FP16", "AVX10_2_512", "AVX10_2_512_AMX_2", "ALL",
                        "DEFAULT"})


def native_bfloat16(cpuinfo: Path = Path("/proc/cpuinfo"),
                    environ: Mapping[str, str] = os.environ) -> bool:
    """True when this CPU multiplies bfloat16 natively (see ``_BF16_FLAGS``) and oneDNN is
    allowed to (its ``ONEDNN_MAX_CPU_ISA`` cap, if set, is one of ``_BF16_ISAS``).

    What ``MODEL_PRECISION=auto`` gets: bfloat16 on AVX512-BF16 and AMX CPUs, float32 on
    AVX2-only and AVX512 CPUs without BF16, and float32 wherever oneDNN is capped below
    AVX512_CORE_BF16 (``ONEDNN_MAX_CPU_ISA=AVX2`` runs a newer CPU as an AVX2-only one).

    Args:
        cpuinfo: the Linux CPU description to read (a test may pass its own file).
        environ: the environment to read the oneDNN cap from.

    Returns:
        False when the file is missing or unreadable (non-Linux systems): float32 is the
        safe choice there.
    """
    cap = environ.get("ONEDNN_MAX_CPU_ISA") or environ.get("DNNL_MAX_CPU_ISA")
    if cap and cap.strip().upper() not in _BF16_ISAS:
        return False
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


def store_for_autocast(
    model: torch.nn.Module, dtype: torch.dtype | None, keep: Collection[torch.Tensor] = ()
) -> int:
    """Store the weights and biases of ``model``'s linear and convolution layers in ``dtype``
    (the autocast dtype), in place; every other parameter and buffer stays as it is, in
    memory of its own. No-op when ``dtype`` is None (float32).

    Under ``torch.autocast(dtype=bfloat16)`` on CPU, ``linear`` and ``conv`` cast float32
    weights and biases to bfloat16 as they run (PyTorch's autocast op list); storing them in
    bfloat16 once gives the same rounded values, so the same outputs (bit-identical:
    tests/models/runtime/test_precision.py), in half the memory. Grounding DINO tiny: about 150 M
    such weights, 600 MB -> 300 MB. The other parameters (LayerNorm, GroupNorm, embeddings,
    position tables) feed float32 ops and keep float32. The model must then only run under
    autocast to ``dtype``: outside it, float32 inputs meet bfloat16 weights and fail.

    Every other float32 tensor is copied into memory of its own, except those in ``keep``,
    which stay where they are: weights loaded by ``mmap`` (safetensors) keep only ``keep`` on
    the file mapping, and :func:`models.runtime.allocator.drop_file_pages` can then release the file
    pages read for the copies.

    Args:
        model: a module in eval mode, on CPU or another device.
        dtype: e.g. ``torch.bfloat16``, or None.
        keep: parameters to leave untouched (not converted, not copied), e.g. a large
            embedding table of which each call reads a few rows.

    Returns:
        The number of tensors converted to ``dtype``.
    """
    import torch

    if dtype is None:
        return 0
    matmul = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)
    converted, seen = 0, set()
    with torch.no_grad():
        for module in model.modules():
            own = (module.named_parameters(recurse=False), module.named_buffers(recurse=False))
            for name, tensor in (pair for named in own for pair in named):
                if tensor is None or id(tensor) in seen or any(tensor is k for k in keep):
                    continue  # tied weights: once
                seen.add(id(tensor))
                if isinstance(module, matmul) and name in ("weight", "bias"):
                    tensor.data = tensor.data.to(dtype)
                    converted += 1
                else:
                    tensor.data = tensor.data.clone()
    return converted
