"""glibc malloc settings for a process that runs PyTorch models (the worker, the benchmark).

PyTorch's large, short-lived CPU tensors make glibc's default malloc page-fault constantly
(twice as slow on a 2-core x86-64 machine); :func:`tune_allocator` keeps freed blocks
for reuse, and :func:`release_memory` hands them back to the OS between jobs and between the
stages of one job, so that one stage's freed memory does not sit beside the next one's.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import re
import sys
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

# glibc mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 1 << 30
_TRIM_THRESHOLD = (1 << 31) - 1  # mallopt takes an int: the largest value, ~2 GiB
_MADV_DONTNEED = 4  # madvise advice (Linux, asm-generic/mman-common.h)
#: File names of GPU runtime libraries: NVIDIA's (the ``nvidia-*`` wheels PyPI's torch
#: depends on: cuBLAS, cuDNN, cuFFT, cuRAND, cuSOLVER, cuSPARSE, NCCL, NVRTC, nvJitLink,
#: CUPTI, the CUDA runtime, NVSHMEM, cuFile, nvJPEG) and torch's and triton's CUDA parts.
GPU_LIBRARY = re.compile(
    r"^lib(cublas|cudnn|cufft|curand|cusolver|cusparse|nccl|nvrtc|nvjitlink|nvtoolsext|cupti"
    r"|cudart|nvshmem|cufile|nvjpeg|torch_cuda|c10_cuda|torch_nvshmem|triton)",
    re.IGNORECASE,
)


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """glibc, loaded once (``find_library`` runs ``ldconfig -p`` in a subprocess, ~1 ms, and
    :func:`release_memory` is called between every job and stage); None off Linux or where
    it cannot be loaded."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


def tune_allocator() -> None:
    """Tell glibc malloc to keep large blocks instead of returning them to the OS.

    ``mallopt(M_MMAP_THRESHOLD, 1 GiB)`` and ``mallopt(M_TRIM_THRESHOLD, ~2 GiB)``, the ctypes
    equivalent of ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_``: PyTorch's large,
    short-lived CPU tensors otherwise page-fault constantly (on 2 cores: the MobileSAM
    encoder 2.24 s -> 1.00 s, Grounding DINO at 800x1066 13.98 s -> 8.61 s). Freed memory
    stays with the process for reuse. No-op where glibc is absent.
    """
    mallopt = getattr(_libc(), "mallopt", None)
    if mallopt is None:
        log.info("no glibc mallopt; allocator left as is")
        return
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD) and mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
    log.info("glibc malloc tuned (mmap threshold 1 GiB): %s", "ok" if ok else "refused")


def release_memory() -> None:
    """Give freed memory back to the OS (glibc ``malloc_trim(0)``: every arena, free pages
    anywhere in the heap, not only at its top).

    With :func:`tune_allocator`'s high trim threshold, freed blocks stay in the heap so that
    one stage's large tensors are reused without page faults. Between jobs, and between the
    stages of a job that allocate differently (Grounding DINO, then the image encoder), they
    only inflate resident memory: the next stage's tensors do not fit the freed blocks and
    are placed beside them. Measured on the worker (bench worker RSS, 4 photos at 12 MP):
    trimming between stages too lowered its peak by ~100 MB for a few
    milliseconds of page faults. No-op where glibc is absent.
    """
    malloc_trim = getattr(_libc(), "malloc_trim", None)
    if malloc_trim is not None:
        malloc_trim(0)


def drop_file_pages(paths: Iterable[Path | str]) -> int:
    """Take the pages of this process's mappings of ``paths`` out of its resident memory
    (``madvise(MADV_DONTNEED)``); the next access reads them again from the page cache or
    the file, with the same contents.

    For weights loaded by ``mmap`` (safetensors): once the values a model needs were copied
    out (``models.runtime.precision.store_for_autocast``), the file pages read for the copy would
    otherwise stay resident beside the copies; the few tensors still used in place (BERT's
    word embeddings: only the rows of a caption's tokens) fault their pages back in as used.
    Only private mappings none of whose pages was ever written (``Anonymous: 0 kB`` in
    /proc/self/smaps) are advised: for those the file holds exactly what memory held.

    Args:
        paths: the mapped files (compared after ``Path.resolve()``).

    Returns:
        Bytes of mappings advised; 0 where /proc/self/smaps or glibc is absent.
    """
    targets = {str(Path(p).resolve()) for p in paths}
    madvise = getattr(_libc(), "madvise", None)
    if madvise is None or not targets:
        return 0
    try:
        with open("/proc/self/smaps") as smaps:
            lines = smaps.read().splitlines()
    except OSError:
        return 0
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    mappings = []  # (start, end, private, anonymous kB) of the target files' mappings
    current = None
    for line in lines:
        head = line.split(maxsplit=5)  # address perms offset dev inode [path]
        if len(head) >= 5 and "-" in head[0] and len(head[1]) == 4:
            current = None
            if len(head) == 6 and head[5] in targets:
                start, end = (int(x, 16) for x in head[0].split("-"))
                current = [start, end, head[1].endswith("p"), None]
                mappings.append(current)
        elif current is not None and line.startswith("Anonymous:"):
            current[3] = int(line.split()[1])
    dropped = 0
    for start, end, private, anonymous in mappings:
        if private and anonymous == 0 and madvise(start, end - start, _MADV_DONTNEED) == 0:
            dropped += end - start
    return dropped


def gpu_library_paths() -> set[str]:
    """Paths of the GPU runtime libraries mapped into this process (:data:`GPU_LIBRARY`,
    matched on the file name in /proc/self/maps); empty where /proc is absent."""
    try:
        with open("/proc/self/maps") as maps:
            lines = maps.read().splitlines()
    except OSError:
        return set()
    paths = set()
    for line in lines:
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and GPU_LIBRARY.match(Path(fields[5]).name):
            paths.add(fields[5])
    return paths


def drop_gpu_library_pages() -> int:
    """On a CPU-only service, take the pages of the GPU runtime libraries out of resident
    memory (:func:`drop_file_pages` on :func:`gpu_library_paths`: only never-written
    mappings, i.e. their code and read-only data, which the files hold as they are).

    PyPI's torch is the CUDA build: ``import torch`` loads cuBLAS, NVRTC, nvJitLink and the
    rest, and their loading and static initialisers read ~150 MB of them into memory
    (measured on this machine: libcublasLt 60 MB, libnvJitLink 31, libnvrtc 27,
    libtorch_cuda 16, others 14), which a process that runs its models on the CPU never
    reads again. Measured worker peak RSS (``python -m bench.speed --worker-rss``, three
    runs each): 1,800-1,908 MiB -> 1,706-1,726 MiB. If GPU code does run later, its pages
    are read back in from the page cache or the file, unchanged.

    Returns:
        Bytes of mappings advised (0 without /proc or glibc).
    """
    dropped = drop_file_pages(gpu_library_paths())
    log.info("GPU libraries' pages dropped from resident memory (%d MB of mappings)",
             dropped >> 20)  # fmt: skip
    return dropped
