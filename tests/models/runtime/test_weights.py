"""Weights: missing and unverified weights are explained, downloads are verified."""

from __future__ import annotations

import hashlib
import http.server
import json
import subprocess
import threading
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import huggingface_hub
import pytest

from models.config import ServiceConfig
from models.errors import ModelError, WeightsMissingError, WeightsUnverifiedError
from models.runtime import weights

PAYLOAD = b"not really MobileSAM, but small\n" * 1000


def blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


# ----------------------------------------------------------------------------- loopback server


class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        self.hits.append(self.path)
        data = self.files.get(self.path)
        if data is None:
            self.send_error(404, "Not Found")
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server():
    """A loopback HTTP server (127.0.0.1 only) serving ``server.files``; yields its base URL."""

    class Handler(_Handler):
        files = {"/mobile_sam.pt": PAYLOAD, "/corrupt.pt": PAYLOAD[:-1] + b"?"}
        hits = []

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield SimpleNamespace(url=f"http://127.0.0.1:{httpd.server_port}", handler=Handler)
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def official_payload(monkeypatch):
    """Pretend PAYLOAD is the official mobile_sam.pt."""
    monkeypatch.setattr(weights, "MOBILE_SAM_BLOB_ID", blob_id(PAYLOAD))


# ----------------------------------------------------------------------------- checksums


def test_git_blob_id_matches_git_hash_object(tmp_path):
    path = tmp_path / "file.bin"
    path.write_bytes(PAYLOAD)
    git = subprocess.run(["git", "hash-object", str(path)], capture_output=True, text=True)
    if git.returncode != 0:
        pytest.skip("git not available")
    assert weights.git_blob_id(path) == git.stdout.strip() == blob_id(PAYLOAD)


# ----------------------------------------------------------------------------- MobileSAM


def test_missing_mobile_sam_names_the_command_path_and_variable(tmp_path):
    config = ServiceConfig(model_dir=tmp_path / "models")
    with pytest.raises(WeightsMissingError) as info:
        weights.resolve_mobile_sam(config)
    message = str(info.value)
    assert "flask models download" in message
    assert str(tmp_path / "models" / "mobile_sam.pt") in message
    assert "MOBILE_SAM_CHECKPOINT" in message


def test_explicit_checkpoint_path_is_the_one_reported_missing(tmp_path):
    config = ServiceConfig(model_dir=tmp_path, mobile_sam_checkpoint=tmp_path / "elsewhere.pt")
    with pytest.raises(WeightsMissingError, match="elsewhere.pt"):
        weights.resolve_mobile_sam(config)


def test_random_weights_are_refused_unless_allowed(mobile_sam_checkpoint, tmp_path):
    config = ServiceConfig(model_dir=tmp_path, mobile_sam_checkpoint=mobile_sam_checkpoint)
    with pytest.raises(WeightsUnverifiedError) as info:
        weights.resolve_mobile_sam(config)
    assert "not the official release" in str(info.value)
    assert str(mobile_sam_checkpoint) in str(info.value)
    allowed = replace(config, allow_unverified_weights=True)
    assert weights.resolve_mobile_sam(allowed) == (mobile_sam_checkpoint, "unverified")


def test_file_with_the_official_checksum_is_official(tmp_path, official_payload):
    (tmp_path / "mobile_sam.pt").write_bytes(PAYLOAD)
    path, status = weights.resolve_mobile_sam(ServiceConfig(model_dir=tmp_path))
    assert (path, status) == (tmp_path / "mobile_sam.pt", "official")


def test_download_is_verified_and_then_resolved_as_official(tmp_path, server, official_payload):
    model_dir = tmp_path / "models"
    path = weights.download_mobile_sam(model_dir, url=server.url + "/mobile_sam.pt", progress=False)
    assert path == model_dir / "mobile_sam.pt"
    assert path.read_bytes() == PAYLOAD
    assert sorted(p.name for p in model_dir.iterdir()) == ["mobile_sam.pt"]  # no .part left
    assert weights.resolve_mobile_sam(ServiceConfig(model_dir=model_dir))[1] == "official"
    # a second download keeps the verified file and does not fetch again
    weights.download_mobile_sam(model_dir, url=server.url + "/mobile_sam.pt", progress=False)
    assert server.handler.hits == ["/mobile_sam.pt"]


def test_download_with_the_wrong_checksum_is_refused_and_leaves_nothing(
    tmp_path, server, official_payload
):
    model_dir = tmp_path / "models"
    with pytest.raises(ModelError, match="failed verification") as info:
        weights.download_mobile_sam(model_dir, url=server.url + "/corrupt.pt", progress=False)
    assert weights.MOBILE_SAM_BLOB_ID in str(info.value)
    assert list(model_dir.iterdir()) == []


def test_download_does_not_replace_a_good_file_with_a_bad_one(tmp_path, server, monkeypatch):
    monkeypatch.setattr(weights, "MOBILE_SAM_BLOB_ID", blob_id(b"something else"))
    (tmp_path / "mobile_sam.pt").write_bytes(b"previous file")
    with pytest.raises(ModelError):
        weights.download_mobile_sam(tmp_path, url=server.url + "/mobile_sam.pt", progress=False)
    assert (tmp_path / "mobile_sam.pt").read_bytes() == b"previous file"
    assert not (tmp_path / "mobile_sam.pt.part").exists()


def test_http_error_is_a_clear_model_error(tmp_path, server):
    with pytest.raises(ModelError, match="HTTP 404"):
        weights.download_mobile_sam(tmp_path, url=server.url + "/missing.pt", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_offline_download_is_a_clear_model_error(tmp_path):
    # port 9 on loopback: nothing listens there, the connection is refused at once
    with pytest.raises(ModelError, match="flask models download"):
        weights.download_mobile_sam(
            tmp_path, url="http://127.0.0.1:9/mobile_sam.pt", progress=False
        )
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- Grounding DINO

HUB_FILES = {
    "config.json": json.dumps({"model_type": "grounding-dino"}).encode(),
    "model.safetensors": b"\0fake tensors\0" * 100,
    "pytorch_model.bin": b"same tensors, older format",
    "README.md": b"# model card",
}


class FakeHub:
    """Stands in for huggingface_hub: model_info with file metadata, snapshot_download."""

    def __init__(self, files: dict[str, bytes], *, corrupt: str | None = None) -> None:
        self.files, self.corrupt, self.downloads = files, corrupt, []

    def sibling(self, name: str, data: bytes) -> SimpleNamespace:
        if name.endswith((".safetensors", ".bin")):
            lfs = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
                   "pointer_size": 134}  # fmt: skip
            return SimpleNamespace(rfilename=name, size=len(data), blob_id="0" * 40, lfs=lfs)
        return SimpleNamespace(rfilename=name, size=len(data), blob_id=blob_id(data), lfs=None)

    def install(self, monkeypatch) -> None:
        hub = self

        class Api:
            def model_info(self, repo_id, *, files_metadata=False, **kwargs):
                assert files_metadata, "checksums need files_metadata=True"
                siblings = [hub.sibling(n, d) for n, d in hub.files.items()]
                return SimpleNamespace(id=repo_id, sha="c0ffee" * 6 + "abcd", siblings=siblings)

        def snapshot_download(repo_id, *, revision, local_dir, allow_patterns, **kwargs):
            hub.downloads.append((repo_id, revision, sorted(allow_patterns)))
            root = Path(local_dir)
            (root / ".cache" / "huggingface").mkdir(parents=True)
            for name in allow_patterns:
                data = hub.files[name]
                if name == hub.corrupt:
                    data = data + b"tampered"
                (root / name).write_bytes(data)
            return str(root)

        monkeypatch.setattr(huggingface_hub, "HfApi", Api)
        monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)


def test_missing_grounding_dino_names_the_command_path_and_variable(tmp_path):
    config = ServiceConfig(model_dir=tmp_path)
    with pytest.raises(WeightsMissingError) as info:
        weights.resolve_grounding_dino(config)
    message = str(info.value)
    expected = tmp_path / "grounding-dino" / "IDEA-Research--grounding-dino-tiny"
    assert "flask models download" in message
    assert str(expected) in message
    assert "GROUNDING_DINO_MODEL" in message


def test_local_directory_without_manifest_is_unverified(grounding_dino_dir, tmp_path):
    config = ServiceConfig(model_dir=tmp_path, grounding_dino_model=str(grounding_dino_dir))
    with pytest.raises(WeightsUnverifiedError, match="not verified") as info:
        weights.resolve_grounding_dino(config)
    assert str(grounding_dino_dir) in str(info.value)
    allowed = replace(config, allow_unverified_weights=True)
    assert weights.resolve_grounding_dino(allowed) == (grounding_dino_dir, "unverified")


def test_hub_download_is_verified_and_marked_official(tmp_path, monkeypatch):
    hub = FakeHub(HUB_FILES)
    hub.install(monkeypatch)
    model_id = "IDEA-Research/grounding-dino-tiny"
    path = weights.download_grounding_dino(tmp_path, model_id, progress=False)
    assert path == tmp_path / "grounding-dino" / "IDEA-Research--grounding-dino-tiny"
    # safetensors make the .bin redundant; the model card is not needed
    assert hub.downloads == [
        (model_id, "c0ffee" * 6 + "abcd", ["config.json", "model.safetensors"])
    ]
    assert sorted(p.name for p in path.iterdir()) == [
        "config.json",
        "model.safetensors",
        weights.MANIFEST_NAME,
    ]
    manifest = json.loads((path / weights.MANIFEST_NAME).read_text())
    assert manifest["model_id"] == model_id
    sha = hashlib.sha256(HUB_FILES["model.safetensors"]).hexdigest()
    assert manifest["files"]["model.safetensors"]["sha256"] == sha
    assert weights.resolve_grounding_dino(ServiceConfig(model_dir=tmp_path)) == (path, "official")
    # a weights file changed after download is no longer official
    (path / "model.safetensors").write_bytes(b"random weights")
    with pytest.raises(WeightsUnverifiedError, match="model.safetensors"):
        weights.resolve_grounding_dino(ServiceConfig(model_dir=tmp_path))


def test_hub_download_with_a_bad_checksum_is_refused_and_leaves_nothing(tmp_path, monkeypatch):
    FakeHub(HUB_FILES, corrupt="model.safetensors").install(monkeypatch)
    with pytest.raises(ModelError, match="failed verification"):
        weights.download_grounding_dino(tmp_path, "IDEA-Research/grounding-dino-tiny",
                                        progress=False)  # fmt: skip
    assert list((tmp_path / "grounding-dino").iterdir()) == []
    with pytest.raises(WeightsMissingError):
        weights.resolve_grounding_dino(ServiceConfig(model_dir=tmp_path))


def test_hub_offline_is_a_clear_model_error(tmp_path, monkeypatch):
    class OfflineApi:
        def model_info(self, repo_id, **kwargs):
            raise OSError("Name or service not known")

    monkeypatch.setattr(huggingface_hub, "HfApi", OfflineApi)
    with pytest.raises(ModelError) as info:
        weights.download_grounding_dino(tmp_path, "IDEA-Research/grounding-dino-tiny")
    message = str(info.value)
    assert "IDEA-Research/grounding-dino-tiny" in message
    assert "Name or service not known" in message and "flask models download" in message
    assert not (tmp_path / "grounding-dino").exists() or not any(
        (tmp_path / "grounding-dino").iterdir()
    )


def test_missing_omdet_turbo_names_the_command_path_and_variable(tmp_path):
    with pytest.raises(WeightsMissingError) as info:
        weights.resolve_omdet_turbo(ServiceConfig(model_dir=tmp_path))
    message = str(info.value)
    expected = tmp_path / "omdet-turbo" / "omlab--omdet-turbo-swin-tiny-hf"
    assert "OmDet-Turbo weights are missing" in message
    assert "flask models download" in message
    assert str(expected) in message
    assert "OMDET_TURBO_MODEL" in message


def test_omdet_turbo_directory_without_manifest_is_refused_unless_allowed(omdet_turbo_dir,
                                                                          tmp_path):
    config = ServiceConfig(model_dir=tmp_path, omdet_turbo_model=str(omdet_turbo_dir))
    with pytest.raises(WeightsUnverifiedError, match="OmDet-Turbo weights .* not verified"):
        weights.resolve_omdet_turbo(config)
    allowed = replace(config, allow_unverified_weights=True)
    assert weights.resolve_omdet_turbo(allowed) == (omdet_turbo_dir, "unverified")


def test_omdet_turbo_download_is_verified_and_marked_official(tmp_path, monkeypatch):
    files = {**HUB_FILES, "config.json": json.dumps({"model_type": "omdet-turbo"}).encode(),
             "tokenizer.json": b'{"model": "bpe"}'}  # fmt: skip
    hub = FakeHub(files)
    hub.install(monkeypatch)
    model_id = "omlab/omdet-turbo-swin-tiny-hf"
    path = weights.download_omdet_turbo(tmp_path, model_id, progress=False)
    assert path == tmp_path / "omdet-turbo" / "omlab--omdet-turbo-swin-tiny-hf"
    assert hub.downloads == [
        (model_id, "c0ffee" * 6 + "abcd", ["config.json", "model.safetensors", "tokenizer.json"])
    ]
    manifest = json.loads((path / weights.MANIFEST_NAME).read_text())
    assert manifest["model_id"] == model_id
    sha = hashlib.sha256(files["model.safetensors"]).hexdigest()
    assert manifest["files"]["model.safetensors"]["sha256"] == sha
    assert manifest["files"]["tokenizer.json"]["blob_id"] == blob_id(files["tokenizer.json"])
    config = ServiceConfig(model_dir=tmp_path)
    assert weights.resolve_omdet_turbo(config) == (path, "official")
    (path / "tokenizer.json").write_bytes(b"another tokenizer")  # small files are checked too
    with pytest.raises(WeightsUnverifiedError, match="tokenizer.json"):
        weights.resolve_omdet_turbo(config)


def test_omdet_turbo_download_with_a_bad_checksum_leaves_nothing(tmp_path, monkeypatch):
    FakeHub(HUB_FILES, corrupt="model.safetensors").install(monkeypatch)
    with pytest.raises(ModelError, match="failed verification"):
        weights.download_omdet_turbo(tmp_path, "omlab/omdet-turbo-swin-tiny-hf", progress=False)
    assert list((tmp_path / "omdet-turbo").iterdir()) == []
    with pytest.raises(WeightsMissingError):
        weights.resolve_omdet_turbo(ServiceConfig(model_dir=tmp_path))


def test_omdet_turbo_offline_is_a_clear_model_error(tmp_path, monkeypatch):
    class OfflineApi:
        def model_info(self, repo_id, **kwargs):
            raise OSError("Name or service not known")

    monkeypatch.setattr(huggingface_hub, "HfApi", OfflineApi)
    with pytest.raises(ModelError) as info:
        weights.download_omdet_turbo(tmp_path, "omlab/omdet-turbo-swin-tiny-hf")
    message = str(info.value)
    assert "omlab/omdet-turbo-swin-tiny-hf" in message and "flask models download" in message


# ----------------------------------------------------------------------------- config


def test_config_from_env(tmp_path):
    config = ServiceConfig.from_env(
        {
            "MODEL_DIR": str(tmp_path / "m"),
            "MOBILE_SAM_CHECKPOINT": str(tmp_path / "sam.pt"),
            "GROUNDING_DINO_MODEL": "IDEA-Research/grounding-dino-base",
            "OMDET_TURBO_MODEL": "/models/omdet",
            "ALLOW_UNVERIFIED_WEIGHTS": "1",
            "MODEL_NUM_THREADS": "2",
        }
    )
    assert config.model_dir == tmp_path / "m"
    assert config.mobile_sam_checkpoint == tmp_path / "sam.pt"
    assert config.grounding_dino_model == "IDEA-Research/grounding-dino-base"
    assert config.omdet_turbo_model == "/models/omdet"
    assert config.allow_unverified_weights is True and config.num_threads == 2


def test_config_defaults_follow_xdg_and_refuse_unverified(tmp_path):
    config = ServiceConfig.from_env({"XDG_CACHE_HOME": str(tmp_path)})
    assert config.model_dir == tmp_path / "visionanything" / "models"
    assert config.mobile_sam_checkpoint is None
    assert config.grounding_dino_model == "IDEA-Research/grounding-dino-tiny"
    assert config.omdet_turbo_model == "omlab/omdet-turbo-swin-tiny-hf"
    assert config.allow_unverified_weights is False and config.device == "cpu"
    assert not config.model_dir.exists()  # nothing is created when reading the config
