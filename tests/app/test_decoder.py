"""The on-device tap decoder's publication (a worker at boot) and its API."""

from __future__ import annotations

import json

from app.storage import storage
from app.worker.decoder import MANIFEST, publish_decoder, read_manifest
from tests.models.conftest import service  # noqa: F401  (the random-weight service)


def test_no_decoder_yet_answers_404_so_the_page_asks_the_worker(client, auth):
    auth.register()
    response = client.get("/api/v1/decoder")
    assert response.status_code == 404 and "server" in response.get_json()["error"]
    assert client.get("/api/v1/decoder/mobile-sam-decoder-0.onnx").status_code == 404


def test_a_worker_publishes_the_decoder_once_per_checkpoint(app, client, auth, service):  # noqa: F811
    with app.app_context():
        store = storage()
        manifest = publish_decoder(store, service)
        assert manifest == read_manifest(store)
        assert manifest["weights"] == "unverified" and len(manifest["sha256"]) == 64
        assert len(manifest["projections_sha256"]) == 64
        assert store.exists("models/" + manifest["projections_file"])
        key = "models/" + manifest["file"]
        assert store.exists(key)
        store.put(key, store.get(key))  # same bytes, newer file
        before = store.local_path(key).stat().st_mtime_ns
        assert publish_decoder(store, service) == manifest  # the same checkpoint: no export
        assert store.local_path(key).stat().st_mtime_ns == before
    auth.register()
    info = client.get("/api/v1/decoder").get_json()
    assert info["sha256"] == manifest["sha256"] and info["embedding"]["dtype"] == "float16"
    response = client.get(info["url"])
    assert response.status_code == 200 and "immutable" in response.headers["Cache-Control"]
    body = response.get_data()
    import hashlib

    assert hashlib.sha256(body).hexdigest() == manifest["sha256"]
    projections = client.get(info["projections_url"]).get_data()
    assert hashlib.sha256(projections).hexdigest() == manifest["projections_sha256"]
    assert client.get("/api/v1/decoder/other.onnx").status_code == 404


def test_a_decoder_of_another_graph_layout_is_exported_again(app, client, auth,
                                                            service):  # noqa: F811
    """A manifest written for the previous graph (masks upsampled in the graph, which the page
    no longer reads) is replaced, even for the same checkpoint."""
    from models.segment.onnx_decoder import GRAPH_VERSION

    with app.app_context():
        store = storage()
        manifest = publish_decoder(store, service)
        assert manifest["graph"] == GRAPH_VERSION
        old = {key: value for key, value in manifest.items() if "projections" not in key}
        store.put(MANIFEST, json.dumps({**old, "graph": 2, "file": "old.onnx"}).encode())
        store.put("models/old.onnx", b"an older graph")
        assert publish_decoder(store, service) == manifest
        assert read_manifest(store) == manifest
    auth.register()
    assert client.get("/api/v1/decoder").get_json()["graph"] == GRAPH_VERSION


def test_an_unreadable_manifest_means_no_decoder(app):
    with app.app_context():
        storage().put(MANIFEST, b"{not json")
        assert read_manifest(storage()) is None
        storage().put(MANIFEST, json.dumps({"file": 3}).encode())
        assert read_manifest(storage()) is None


def test_the_decoder_needs_a_login(client):
    assert client.get("/api/v1/decoder").status_code in (302, 401)
