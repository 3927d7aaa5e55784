"""API: the on-device tap decoder (MobileSAM's prompt encoder and mask decoder as two ONNX
graphs, published by a worker, ``app.worker.decoder``). A photo's image embedding is one of its
files (``app.files.EMBEDDING``), served to its owner only."""

from __future__ import annotations

from flask import abort, send_file, url_for
from flask_login import login_required

from app.api.blueprint import bp
from app.api.serializers import error
from app.storage import storage
from app.worker.decoder import published_files, read_manifest
from models.segment.onnx_decoder import EMBEDDING_SHAPE


@bp.get("/decoder")
@login_required
def decoder():
    """The decoder's and its per-photo projection graph's URLs and SHA-256s, the weights
    ("official" or "unverified"), the graphs' layout version, and the image embedding format
    they take; 404 while no worker has published one (the page then sends taps to the
    worker)."""
    manifest = read_manifest(storage())
    if manifest is None:
        return error(404, "Taps are decoded by the server: no on-device decoder yet.")
    return {
        "url": url_for("api.decoder_file", name=manifest["file"]),
        "sha256": manifest.get("sha256"),
        "projections_url": (url_for("api.decoder_file", name=manifest["projections_file"])
                            if manifest.get("projections_file") else None),
        "projections_sha256": manifest.get("projections_sha256"),
        "weights": manifest.get("weights"),
        "graph": manifest.get("graph", 1),
        "embedding": {"dtype": "float16", "byte_order": "little", "shape": list(EMBEDDING_SHAPE),
                      "long_side": 1024},
    }


@bp.get("/decoder/<name>")
@login_required
def decoder_file(name: str):
    """An ONNX file the manifest names (its name holds its hash, so it is cached for good)."""
    manifest = read_manifest(storage())
    if manifest is None or name not in published_files(manifest):
        abort(404)
    try:
        source = storage().send_source("models/" + name)
    except FileNotFoundError:
        abort(404)
    response = send_file(source, mimetype="application/octet-stream", download_name=name,
                         max_age=365 * 24 * 3600)
    response.headers["Cache-Control"] = "private, max-age=31536000, immutable"
    return response
