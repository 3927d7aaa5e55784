"""The ONNX prompt decoder the page runs, published in storage by the worker at boot: the
worker has the MobileSAM checkpoint, the web process (another dyno) may not, and both see the
same storage.

Storage keys: ``models/mobile-sam-decoder-<sha16>.onnx`` and
``models/mobile-sam-projections-<sha16>.onnx`` (the two graphs of
``models.segment.onnx_decoder``, named by their content) and ``models/mobile-sam-decoder.json``
(the manifest the web reads: the files' names and SHA-256s, the checkpoint's SHA-256 they were
exported from, whether that checkpoint is the official release, and the graphs' layout
version). A worker whose checkpoint and graph version match the manifest exports nothing.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

from app.storage import Storage

log = logging.getLogger(__name__)

MANIFEST = "models/mobile-sam-decoder.json"


def read_manifest(store: Storage) -> dict[str, Any] | None:
    """The published decoder's manifest, or None when no worker has published one (or it
    cannot be read: the page then sends taps to the worker)."""
    try:
        manifest = json.loads(store.get(MANIFEST))
    except (FileNotFoundError, ValueError):
        return None
    except Exception:
        log.warning("could not read %s", MANIFEST, exc_info=True)
        return None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("file"), str):
        return None
    return manifest


def published_files(manifest: dict[str, Any]) -> tuple[str, ...]:
    """The names (under ``models/``) of the ONNX files a manifest publishes."""
    names = (manifest.get("file"), manifest.get("projections_file"))
    return tuple(name for name in names if isinstance(name, str))


def publish_decoder(store: Storage, service: Any) -> dict[str, Any] | None:
    """Export the loaded MobileSAM's prompt decoder to ONNX and put it in ``store``, unless the
    manifest already names one exported from the same checkpoint with the same graph layout
    (``models.segment.onnx_decoder.GRAPH_VERSION``).

    Args:
        store: the app's storage.
        service: a loaded ``models.service.InferenceService`` (nothing happens without its
            segmenter, e.g. when the weights are missing).

    Returns:
        The manifest in storage, or None when there is no decoder to publish or the export
        failed (logged: taps then go to the worker).
    """
    from models.runtime.weights import resolve_mobile_sam, sha256_file
    from models.segment.onnx_decoder import GRAPH_VERSION, OPSET, export_prompt_decoder

    if service.segmenter is None:
        return None
    try:
        checkpoint, status = resolve_mobile_sam(service.config)
        checkpoint_sha = sha256_file(checkpoint)
        current = read_manifest(store)
        if (current and current.get("checkpoint_sha256") == checkpoint_sha
                and current.get("graph") == GRAPH_VERSION
                and all(store.exists("models/" + f) for f in published_files(current))):
            return current
        with tempfile.TemporaryDirectory(prefix="visionanything-decoder-") as tmp:
            path, projections = Path(tmp) / "decoder.onnx", Path(tmp) / "projections.onnx"
            digest, projections_digest = export_prompt_decoder(service.segmenter.model, path,
                                                               projections)  # fmt: skip
            name = f"mobile-sam-decoder-{digest[:16]}.onnx"
            projections_name = f"mobile-sam-projections-{projections_digest[:16]}.onnx"
            store.put("models/" + projections_name, projections.read_bytes())
            store.put("models/" + name, path.read_bytes())
        manifest = {"file": name, "sha256": digest, "projections_file": projections_name,
                    "projections_sha256": projections_digest, "checkpoint_sha256": checkpoint_sha,
                    "weights": status, "opset": OPSET, "graph": GRAPH_VERSION}  # fmt: skip
        store.put(MANIFEST, json.dumps(manifest).encode())
    except Exception:
        log.warning("the on-device tap decoder was not published", exc_info=True)
        return None
    log.info("published the on-device tap decoder %s (%s weights)", name, status)
    return manifest
