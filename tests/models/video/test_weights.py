"""The video model's weights go through the same verified download and checks as the others,
and its random-weight test checkpoint loads through the same loader the worker uses."""

from __future__ import annotations

from dataclasses import replace

import pytest

from models.config import ServiceConfig
from models.errors import WeightsMissingError, WeightsUnverifiedError
from models.runtime import weights
from models.video.sam2 import load_video_model
from tests.models.runtime.test_weights import HUB_FILES, FakeHub


def test_missing_video_model_names_the_command_path_and_variable(tmp_path) -> None:
    with pytest.raises(WeightsMissingError) as info:
        weights.resolve_sam2_video(ServiceConfig(model_dir=tmp_path))
    message = str(info.value)
    assert "flask models download" in message and "SAM2_VIDEO_MODEL" in message
    assert str(tmp_path / "sam2-video" / "facebook--sam2.1-hiera-tiny") in message


def test_hub_download_of_the_video_model_is_verified(tmp_path, monkeypatch) -> None:
    FakeHub(HUB_FILES).install(monkeypatch)
    path = weights.download_sam2_video(tmp_path, "facebook/sam2.1-hiera-tiny", progress=False)
    assert path == tmp_path / "sam2-video" / "facebook--sam2.1-hiera-tiny"
    assert weights.resolve_sam2_video(ServiceConfig(model_dir=tmp_path)) == (path, "official")
    (path / "model.safetensors").write_bytes(b"other weights")
    with pytest.raises(WeightsUnverifiedError, match="model.safetensors"):
        weights.resolve_sam2_video(ServiceConfig(model_dir=tmp_path))


def test_random_checkpoint_is_refused_unless_allowed_and_loads_at_the_work_size(
    video_service_config: ServiceConfig,
) -> None:
    with pytest.raises(WeightsUnverifiedError, match="ALLOW_UNVERIFIED_WEIGHTS"):
        load_video_model(replace(video_service_config, allow_unverified_weights=False))
    model, status = load_video_model(video_service_config)
    assert status == "unverified"
    assert model.config.image_size == 256
    assert model.prompt_encoder.image_embedding_size == (16, 16)


def test_video_settings_from_env(tmp_path) -> None:
    config = ServiceConfig.from_env({"MODEL_DIR": str(tmp_path), "VIDEO_FPS": "2.5",
                                     "VIDEO_WORK_SIZE": "384",
                                     "SAM2_VIDEO_MODEL": "facebook/sam2.1-hiera-small"})
    assert (config.video_fps, config.video_work_size) == (2.5, 384)
    assert config.sam2_video_model == "facebook/sam2.1-hiera-small"
    for bad in ({"VIDEO_WORK_SIZE": "500"}, {"VIDEO_FPS": "0"}):
        with pytest.raises(ValueError):
            ServiceConfig.from_env({"MODEL_DIR": str(tmp_path), **bad})
