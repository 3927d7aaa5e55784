"""Configuration of the inference service, read from the environment by the web app/worker."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_GROUNDING_DINO_MODEL = "IDEA-Research/grounding-dino-tiny"
DEFAULT_OMDET_TURBO_MODEL = "omlab/omdet-turbo-swin-tiny-hf"
DEFAULT_SAM2_VIDEO_MODEL = "facebook/sam2.1-hiera-tiny"

_TRUE = {"1", "true", "yes", "on"}


def default_model_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """Return ``$XDG_CACHE_HOME/visionanything/models`` (``~/.cache/...`` when unset).

    Follows the XDG Base Directory specification for the cache location. Creates nothing.
    """
    cache = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "visionanything" / "models"


@dataclass(frozen=True)
class ServiceConfig:
    """Where the weights live and how inference runs.

    Attributes:
        model_dir: cache directory for downloaded weights (``MODEL_DIR``).
        mobile_sam_checkpoint: explicit MobileSAM ``.pt`` path (``MOBILE_SAM_CHECKPOINT``);
            None means ``model_dir / "mobile_sam.pt"``.
        grounding_dino_model: Hugging Face hub id or local directory (``GROUNDING_DINO_MODEL``);
            finds the words of find by name.
        omdet_turbo_model: Hugging Face hub id or local directory (``OMDET_TURBO_MODEL``);
            names everything mode's objects and a tapped object, and finds new words asked
            about a photo already seen.
        allow_unverified_weights: accept weights whose checksum is not the official one
            (``ALLOW_UNVERIFIED_WEIGHTS=1``; tests only).
        device: torch device string, e.g. ``"cpu"``.
        num_threads: torch intra-op threads (``MODEL_NUM_THREADS``); None means the CPUs
            this process may use. Use 1 where the worker shares busy CPUs: two OpenMP threads
            on two contended cores measured 3-10x slower than one.
        precision: arithmetic of Grounding DINO, OmDet-Turbo and MobileSAM's mask decoder
            (``MODEL_PRECISION``): "float32", "bfloat16" (``torch.autocast``: matrix products
            in bfloat16, outputs returned as float32) or "auto" (bfloat16 where the CPU
            multiplies bfloat16 natively, see :func:`models.runtime.precision.native_bfloat16`, else
            float32). MobileSAM's image encoder always runs in float32.
        sam2_video_model: the video tracking model, a Hugging Face hub id or a local
            directory (``SAM2_VIDEO_MODEL``; a ``Sam2VideoModel`` checkpoint).
        video_fps: frames per second of video the tracker processes (``VIDEO_FPS``); masks
            are carried to the frames between.
        video_work_size: side of the square the tracker sees each processed frame at, px
            (``VIDEO_WORK_SIZE``; a multiple of 32; the checkpoint's own is 1024).
    """

    model_dir: Path
    mobile_sam_checkpoint: Path | None = None
    grounding_dino_model: str = DEFAULT_GROUNDING_DINO_MODEL
    omdet_turbo_model: str = DEFAULT_OMDET_TURBO_MODEL
    allow_unverified_weights: bool = False
    device: str = "cpu"
    num_threads: int | None = None
    precision: str = "auto"
    sam2_video_model: str = DEFAULT_SAM2_VIDEO_MODEL
    video_fps: float = 5.0
    video_work_size: int = 512

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> ServiceConfig:
        """Build a config from ``MODEL_DIR``, ``MOBILE_SAM_CHECKPOINT``, ``GROUNDING_DINO_MODEL``,
        ``OMDET_TURBO_MODEL``, ``ALLOW_UNVERIFIED_WEIGHTS``, ``MODEL_DEVICE``,
        ``MODEL_NUM_THREADS`` and ``MODEL_PRECISION``, and the video tracker's
        ``SAM2_VIDEO_MODEL``, ``VIDEO_FPS`` and ``VIDEO_WORK_SIZE``.

        Raises:
            ValueError: ``MODEL_NUM_THREADS`` is not a positive integer, or
                ``MODEL_PRECISION`` is not one of ``models.runtime.precision.PRECISIONS``;
                ``VIDEO_FPS`` is not a positive number; ``VIDEO_WORK_SIZE`` is not a
                multiple of 32 from 256 to 1024.
        """
        from models.runtime.precision import PRECISIONS

        model_dir_text = environ.get("MODEL_DIR")
        model_dir = (
            Path(model_dir_text).expanduser() if model_dir_text else default_model_dir(environ)
        )
        checkpoint = environ.get("MOBILE_SAM_CHECKPOINT")
        threads_text = environ.get("MODEL_NUM_THREADS")
        num_threads = None
        if threads_text:
            num_threads = int(threads_text)
            if num_threads < 1:
                raise ValueError(f"MODEL_NUM_THREADS must be >= 1, got {threads_text!r}")
        precision = (environ.get("MODEL_PRECISION") or "auto").strip().lower()
        if precision not in PRECISIONS:
            raise ValueError(
                f"MODEL_PRECISION must be one of {', '.join(PRECISIONS)}, got {precision!r}"
            )
        video_fps = float(environ.get("VIDEO_FPS") or 5.0)
        if not 0 < video_fps <= 60:
            raise ValueError(f"VIDEO_FPS must be a number of frames per second, got {video_fps}")
        work_size = int(environ.get("VIDEO_WORK_SIZE") or 512)
        if work_size % 32 or not 256 <= work_size <= 1024:
            raise ValueError(f"VIDEO_WORK_SIZE must be a multiple of 32 from 256 to 1024, "
                             f"got {work_size}")
        return cls(
            model_dir=model_dir,
            mobile_sam_checkpoint=Path(checkpoint).expanduser() if checkpoint else None,
            grounding_dino_model=environ.get("GROUNDING_DINO_MODEL")
            or DEFAULT_GROUNDING_DINO_MODEL,
            omdet_turbo_model=environ.get("OMDET_TURBO_MODEL") or DEFAULT_OMDET_TURBO_MODEL,
            allow_unverified_weights=environ.get("ALLOW_UNVERIFIED_WEIGHTS", "").lower() in _TRUE,
            device=environ.get("MODEL_DEVICE") or "cpu",
            num_threads=num_threads,
            precision=precision,
            sam2_video_model=environ.get("SAM2_VIDEO_MODEL") or DEFAULT_SAM2_VIDEO_MODEL,
            video_fps=video_fps,
            video_work_size=work_size,
        )
