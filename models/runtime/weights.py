"""Weights registry: where each model's weights live, how they are downloaded and verified.

Nothing here downloads at job time: :func:`resolve_mobile_sam`, :func:`resolve_grounding_dino`
and :func:`resolve_omdet_turbo` only look at the disk and say whether what they find is the
official release ("official") or something else ("unverified", e.g. the random-weight test
fixtures). Downloads happen only through ``flask models download``
(:func:`download_mobile_sam`, :func:`download_grounding_dino`, :func:`download_omdet_turbo`).
The two Hugging Face hub models share one path (:func:`resolve_hub_model`,
:func:`download_hub_model`): every file checked against the hub's checksums, a manifest
written beside them, a progress bar.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

from tqdm.auto import tqdm

from models.config import ServiceConfig
from models.errors import ModelError, WeightsMissingError, WeightsUnverifiedError

log = logging.getLogger(__name__)

OFFICIAL = "official"
UNVERIFIED = "unverified"

# MobileSAM (Zhang et al. 2023), the checkpoint published in the authors' repository.
MOBILE_SAM_URL = (
    "https://raw.githubusercontent.com/ChaoningZhang/MobileSAM/master/weights/mobile_sam.pt"
)
# Git blob id of weights/mobile_sam.pt in ChaoningZhang/MobileSAM (`git hash-object`).
MOBILE_SAM_BLOB_ID = "7ef2d090979fd9853adf17b7a99c8b94a1c5a6a7"
MOBILE_SAM_FILENAME = "mobile_sam.pt"

GROUNDING_DINO_SUBDIR = "grounding-dino"
OMDET_TURBO_SUBDIR = "omdet-turbo"
SAM2_VIDEO_SUBDIR = "sam2-video"
# Written by download_hub_model next to the files it verified against the hub.
MANIFEST_NAME = "visionanything-manifest.json"
# Weight formats that are never fetched when model.safetensors exists (same tensors).
_REDUNDANT_FORMATS = (".bin", ".h5", ".msgpack", ".ckpt", ".pth", ".onnx")

_CHUNK = 1 << 20  # 1 MiB reads for hashing and streaming
_TIMEOUT_S = 60.0

DOWNLOAD_HINT = "Run `flask models download` to fetch the official weights"


# ---------------------------------------------------------------------------- checksums


def git_blob_id(path: Path) -> str:
    """Git blob id of a file, as ``git hash-object`` prints it: sha1(b"blob <size>\\0" + data).

    Returns 40 lowercase hex digits. Raises OSError if the file cannot be read.
    """
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    """SHA-256 of a file as 64 lowercase hex digits (the hub's LFS ``sha256``)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------------------- MobileSAM


def mobile_sam_path(config: ServiceConfig) -> Path:
    """Checkpoint path: ``config.mobile_sam_checkpoint`` or ``model_dir / "mobile_sam.pt"``."""
    if config.mobile_sam_checkpoint is not None:
        return Path(config.mobile_sam_checkpoint)
    return Path(config.model_dir) / MOBILE_SAM_FILENAME


def resolve_mobile_sam(config: ServiceConfig) -> tuple[Path, str]:
    """Find the MobileSAM checkpoint and check it is the official one.

    Returns:
        (path, "official" | "unverified"); "official" iff the file's git blob id equals
        ``MOBILE_SAM_BLOB_ID``.

    Raises:
        WeightsMissingError: no file at the path (message names `flask models download`,
            the path and ``MOBILE_SAM_CHECKPOINT``).
        WeightsUnverifiedError: the checksum differs and ``allow_unverified_weights`` is False.
    """
    path = mobile_sam_path(config)
    if not path.is_file():
        raise WeightsMissingError(
            f"MobileSAM weights are missing: no file at {path}. {DOWNLOAD_HINT} into "
            f"{config.model_dir}, or set MOBILE_SAM_CHECKPOINT to the path of mobile_sam.pt."
        )
    blob_id = git_blob_id(path)
    if blob_id == MOBILE_SAM_BLOB_ID:
        return path, OFFICIAL
    if not config.allow_unverified_weights:
        raise WeightsUnverifiedError(
            f"The MobileSAM weights at {path} are not the official release (git blob id "
            f"{blob_id}, expected {MOBILE_SAM_BLOB_ID}). Delete the file and run "
            "`flask models download`, or set ALLOW_UNVERIFIED_WEIGHTS=1 (tests only)."
        )
    log.warning("using UNVERIFIED MobileSAM weights at %s (blob id %s)", path, blob_id)
    return path, UNVERIFIED


def download_mobile_sam(
    model_dir: Path, *, url: str = MOBILE_SAM_URL, progress: bool = True
) -> Path:
    """Download the MobileSAM checkpoint to ``model_dir / "mobile_sam.pt"`` and verify it.

    Streams to ``mobile_sam.pt.part`` with a tqdm progress bar (bytes), checks the git blob id
    against ``MOBILE_SAM_BLOB_ID`` and only then renames the file into place (``os.replace``,
    atomic on one filesystem). A file already in place with the right id is kept as is.

    Returns:
        The path of the verified checkpoint (about 39 MB).

    Raises:
        ModelError: network failure, HTTP error, or a checksum mismatch; no file is left
            behind in that case.
    """
    model_dir = Path(model_dir)
    target = model_dir / MOBILE_SAM_FILENAME
    expected = MOBILE_SAM_BLOB_ID  # read at call time, so tests can substitute a payload's id
    if target.is_file() and git_blob_id(target) == expected:
        log.info("MobileSAM weights already present and verified at %s", target)
        return target
    model_dir.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    try:
        _fetch(url, part, progress=progress, desc="MobileSAM")
        actual = git_blob_id(part)
        if actual != expected:
            raise ModelError(
                f"The file downloaded from {url} failed verification (git blob id {actual}, "
                f"expected {expected}); nothing was saved. Try `flask models download` again "
                "later, or report it if it keeps happening."
            )
        os.replace(part, target)
    finally:
        part.unlink(missing_ok=True)
    log.info("MobileSAM weights verified and saved to %s", target)
    return target


def _fetch(url: str, dest: Path, *, progress: bool, desc: str) -> None:
    """Stream ``url`` into ``dest`` (overwritten); ModelError on any network/HTTP failure."""
    request = urllib.request.Request(url, headers={"User-Agent": "visionanything-weights/1"})
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT_S) as response:
            total = response.headers.get("Content-Length")
            with (
                dest.open("wb") as out,
                tqdm(
                    total=int(total) if total and total.isdigit() else None,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    desc=desc,
                    disable=not progress,
                ) as bar,
            ):
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as exc:
        raise ModelError(
            f"Could not download {desc} weights from {url}: HTTP {exc.code} {exc.reason}."
        ) from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise ModelError(
            f"Could not download {desc} weights from {url} ({reason}). Check the internet "
            "connection and run `flask models download` again."
        ) from exc


# ---------------------------------------------------------------------------- hub models


class HubModel(NamedTuple):
    """A model fetched from the Hugging Face hub: how it is named to people and where it goes.

    Attributes:
        name: e.g. "Grounding DINO", in messages.
        subdir: its folder under ``model_dir``, e.g. "grounding-dino".
        variable: the environment variable that names its hub id or directory.
    """

    name: str
    subdir: str
    variable: str


GROUNDING_DINO = HubModel("Grounding DINO", GROUNDING_DINO_SUBDIR, "GROUNDING_DINO_MODEL")
OMDET_TURBO = HubModel("OmDet-Turbo", OMDET_TURBO_SUBDIR, "OMDET_TURBO_MODEL")
SAM2_VIDEO = HubModel("SAM 2 video", SAM2_VIDEO_SUBDIR, "SAM2_VIDEO_MODEL")


def hub_model_dir(model_dir: Path, subdir: str, model_id: str) -> Path:
    """Local directory of a hub model: ``model_dir/<subdir>/<model_id, "/" -> "--">``."""
    return Path(model_dir) / subdir / model_id.replace("/", "--")


def grounding_dino_dir(model_dir: Path, model_id: str) -> Path:
    """Local directory of a Grounding DINO hub model:
    ``model_dir/grounding-dino/<model_id, "/" -> "--">``."""
    return hub_model_dir(model_dir, GROUNDING_DINO_SUBDIR, model_id)


def omdet_turbo_dir(model_dir: Path, model_id: str) -> Path:
    """Local directory of an OmDet-Turbo hub model:
    ``model_dir/omdet-turbo/<model_id, "/" -> "--">``."""
    return hub_model_dir(model_dir, OMDET_TURBO_SUBDIR, model_id)


def sam2_video_dir(model_dir: Path, model_id: str) -> Path:
    """Local directory of the video tracking model:
    ``model_dir/sam2-video/<model_id, "/" -> "--">``."""
    return hub_model_dir(model_dir, SAM2_VIDEO_SUBDIR, model_id)


def _looks_like_path(value: str) -> bool:
    """True for values meant as a directory (absolute, ./, ../, ~) or an existing directory."""
    return value.startswith(("/", "./", "../", "~")) or Path(value).is_dir()


def resolve_hub_model(config: ServiceConfig, model: HubModel, value: str) -> tuple[Path, str]:
    """Find a hub model's directory on disk (never downloads).

    ``value`` is a hub id (looked up under ``config.model_dir``, see :func:`hub_model_dir`) or
    a local directory. It is "official" iff the directory has the manifest written by
    :func:`download_hub_model` and every file listed in it still has the checksum the hub
    reported (LFS sha256, or git blob id for small files).

    Returns:
        (directory, "official" | "unverified").

    Raises:
        WeightsMissingError: no directory with a ``config.json`` (message names
            `flask models download`, the path and ``model.variable``).
        WeightsUnverifiedError: not verifiable and ``allow_unverified_weights`` is False.
    """
    if _looks_like_path(value):
        path = Path(value).expanduser()
    else:
        path = hub_model_dir(config.model_dir, model.subdir, value)
    if not (path / "config.json").is_file():
        raise WeightsMissingError(
            f"{model.name} weights are missing: no model at {path}. {DOWNLOAD_HINT} into "
            f"{config.model_dir}, or set {model.variable} to a hub id or a local model "
            "directory."
        )
    problem = _check_manifest(path)
    if problem is None:
        return path, OFFICIAL
    if not config.allow_unverified_weights:
        raise WeightsUnverifiedError(
            f"The {model.name} weights at {path} are not verified as an official release "
            f"({problem}). Delete the directory and run `flask models download`, or set "
            "ALLOW_UNVERIFIED_WEIGHTS=1 (tests only)."
        )
    log.warning("using UNVERIFIED %s weights at %s (%s)", model.name, path, problem)
    return path, UNVERIFIED


def resolve_grounding_dino(config: ServiceConfig) -> tuple[Path, str]:
    """Find the Grounding DINO directory on disk (``config.grounding_dino_model``, env
    ``GROUNDING_DINO_MODEL``): :func:`resolve_hub_model`, with its returns and errors."""
    return resolve_hub_model(config, GROUNDING_DINO, config.grounding_dino_model)


def resolve_omdet_turbo(config: ServiceConfig) -> tuple[Path, str]:
    """Find the OmDet-Turbo directory on disk (``config.omdet_turbo_model``, env
    ``OMDET_TURBO_MODEL``): :func:`resolve_hub_model`, with its returns and errors."""
    return resolve_hub_model(config, OMDET_TURBO, config.omdet_turbo_model)


def resolve_sam2_video(config: ServiceConfig) -> tuple[Path, str]:
    """Find the video tracking model's directory on disk (``config.sam2_video_model``, env
    ``SAM2_VIDEO_MODEL``, a ``Sam2VideoModel`` checkpoint): :func:`resolve_hub_model`, with its
    returns and errors."""
    return resolve_hub_model(config, SAM2_VIDEO, config.sam2_video_model)


def _check_manifest(path: Path) -> str | None:
    """None if ``path`` matches its manifest, else a short reason why not."""
    manifest_path = path / MANIFEST_NAME
    if not manifest_path.is_file():
        return "no download manifest"
    try:
        manifest = json.loads(manifest_path.read_text())
        files: dict[str, dict[str, Any]] = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return "unreadable download manifest"
    if not files or not any(
        name.endswith(".safetensors") or name.endswith(".bin") for name in files
    ):
        return "the manifest lists no weights file"
    for name, expected in files.items():
        problem = _check_file(path / name, expected)
        if problem:
            return f"{name}: {problem}"
    return None


def _check_file(path: Path, expected: dict[str, Any]) -> str | None:
    """None if ``path`` has the manifest's sha256 / blob id, else the reason."""
    if not path.is_file():
        return "missing"
    if "sha256" in expected:
        return None if sha256_file(path) == expected["sha256"] else "sha256 differs"
    if "blob_id" in expected:
        return None if git_blob_id(path) == expected["blob_id"] else "git blob id differs"
    return "no checksum in manifest"


def _select_files(siblings: Iterable[Any]) -> list[Any]:
    """Files worth fetching: all but weight formats made redundant by model.safetensors."""
    files = [s for s in siblings if not s.rfilename.startswith(".")]
    if any(s.rfilename.endswith(".safetensors") for s in files):
        files = [s for s in files if not s.rfilename.endswith(_REDUNDANT_FORMATS)]
    return [s for s in files if not s.rfilename.lower().endswith((".md", ".png", ".jpg"))]


def download_hub_model(
    model_dir: Path, model_id: str, model: HubModel, *, progress: bool = True
) -> Path:
    """Download a model from the Hugging Face hub and verify every file.

    Uses ``huggingface_hub.HfApi().model_info(files_metadata=True)`` for the file list and the
    hub's checksums (LFS sha256 for large files, git blob id for small ones), then
    ``huggingface_hub.snapshot_download`` pinned to that revision into a staging directory
    (with its progress bars unless ``progress`` is False); each file is checked, then the
    directory is moved to :func:`hub_model_dir` with a manifest
    (``visionanything-manifest.json``) that marks it official.

    Returns:
        The model directory, loadable with ``from_pretrained(dir, local_files_only=True)``.

    Raises:
        ModelError: the hub is unreachable, the model id is unknown, or a checksum differs
            (nothing is left in place in that case); the message names
            `flask models download`.
    """
    import huggingface_hub

    target = hub_model_dir(model_dir, model.subdir, model_id)
    staging = target.with_name(target.name + ".part")
    try:
        info = huggingface_hub.HfApi().model_info(model_id, files_metadata=True)
        files = _select_files(info.siblings or [])
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        huggingface_hub.snapshot_download(
            repo_id=model_id,
            revision=info.sha,
            local_dir=staging,
            allow_patterns=[s.rfilename for s in files],
            tqdm_class=None if progress else _SilentTqdm,
        )
    except ModelError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    except Exception as exc:  # hub errors come as several httpx/hub exception types
        shutil.rmtree(staging, ignore_errors=True)
        raise ModelError(
            f"Could not download {model_id} from the Hugging Face hub "
            f"({type(exc).__name__}: {exc}). Check the internet connection and run "
            "`flask models download` again."
        ) from exc
    try:
        manifest = _verify_download(staging, files, model_id, info.sha)
        (staging / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2))
        shutil.rmtree(staging / ".cache", ignore_errors=True)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("%s %s verified and saved to %s", model.name, model_id, target)
    return target


def download_grounding_dino(model_dir: Path, model_id: str, *, progress: bool = True) -> Path:
    """Download a Grounding DINO model (e.g. "IDEA-Research/grounding-dino-tiny") into
    :func:`grounding_dino_dir`: :func:`download_hub_model`, with its returns and errors."""
    return download_hub_model(model_dir, model_id, GROUNDING_DINO, progress=progress)


def download_omdet_turbo(model_dir: Path, model_id: str, *, progress: bool = True) -> Path:
    """Download an OmDet-Turbo model (e.g. "omlab/omdet-turbo-swin-tiny-hf") into
    :func:`omdet_turbo_dir`: :func:`download_hub_model`, with its returns and errors."""
    return download_hub_model(model_dir, model_id, OMDET_TURBO, progress=progress)


def download_sam2_video(model_dir: Path, model_id: str, *, progress: bool = True) -> Path:
    """Download the video tracking model (e.g. "facebook/sam2.1-hiera-tiny", ~160 MB) into
    :func:`sam2_video_dir`: :func:`download_hub_model`, with its returns and errors."""
    return download_hub_model(model_dir, model_id, SAM2_VIDEO, progress=progress)


def _verify_download(
    staging: Path, files: list[Any], model_id: str, revision: str | None
) -> dict[str, Any]:
    """Check each downloaded file against the hub metadata; return the manifest dict."""
    entries: dict[str, dict[str, Any]] = {}
    for sibling in files:
        path = staging / sibling.rfilename
        lfs = sibling.lfs
        if lfs is not None:
            expected = {"sha256": lfs["sha256"] if isinstance(lfs, dict) else lfs.sha256}
        elif sibling.blob_id:
            expected = {"blob_id": sibling.blob_id}
        else:
            raise ModelError(f"The hub gave no checksum for {model_id}/{sibling.rfilename}.")
        problem = _check_file(path, expected)
        if problem:
            raise ModelError(
                f"{model_id}/{sibling.rfilename} failed verification ({problem}); nothing was "
                "saved. Run `flask models download` again."
            )
        entries[sibling.rfilename] = {**expected, "size": path.stat().st_size}
    if not any(name.endswith((".safetensors", ".bin")) for name in entries):
        raise ModelError(f"{model_id} has no weights file on the hub.")
    return {
        "model_id": model_id,
        "revision": revision,
        "source": "huggingface.co",
        "files": entries,
    }


class _SilentTqdm(tqdm):
    """tqdm that never draws; given to snapshot_download when progress=False."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["disable"] = True
        super().__init__(*args, **kwargs)
