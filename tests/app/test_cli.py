"""``flask models download``: every model the worker runs is fetched through the verified
download path (the downloads themselves are tested in tests/models/runtime/test_weights.py)."""

from __future__ import annotations

from pathlib import Path

from models.runtime import weights


def fake_downloads(monkeypatch, tmp_path: Path) -> list[tuple[str, str]]:
    """Replace the four downloads by recorders; returns the record of (model, id) calls."""
    calls: list[tuple[str, str]] = []

    def recorder(name: str):
        def download(model_dir, model_id=None, **kwargs):
            calls.append((name, model_id or ""))
            return tmp_path / name

        return download

    monkeypatch.setattr(weights, "download_mobile_sam", recorder("mobile-sam"))
    monkeypatch.setattr(weights, "download_grounding_dino", recorder("grounding-dino"))
    monkeypatch.setattr(weights, "download_omdet_turbo", recorder("omdet-turbo"))
    monkeypatch.setattr(weights, "download_sam2_video", recorder("sam2-video"))
    return calls


def test_download_fetches_every_model_not_verified(app, monkeypatch, tmp_path):
    calls = fake_downloads(monkeypatch, tmp_path)
    config = app.config["INFERENCE"]
    result = app.test_cli_runner().invoke(args=["models", "download"])
    assert result.exit_code == 0, result.output
    # The test checkpoints are random weights, so none is official: each is fetched.
    assert calls == [("mobile-sam", ""), ("grounding-dino", config.grounding_dino_model),
                     ("omdet-turbo", config.omdet_turbo_model),
                     ("sam2-video", config.sam2_video_model)]  # fmt: skip
    assert f"OmDet-Turbo weights: {tmp_path / 'omdet-turbo'}" in result.output


def test_download_only_omdet_turbo(app, monkeypatch, tmp_path):
    calls = fake_downloads(monkeypatch, tmp_path)
    result = app.test_cli_runner().invoke(args=["models", "download", "--only", "omdet-turbo"])
    assert result.exit_code == 0, result.output
    assert [name for name, _ in calls] == ["omdet-turbo"]


def test_a_failed_download_is_reported_with_the_model(app, monkeypatch, tmp_path):
    from models.errors import ModelError

    fake_downloads(monkeypatch, tmp_path)

    def offline(*args, **kwargs):
        raise ModelError("Could not download omlab/omdet-turbo-swin-tiny-hf (offline).")

    monkeypatch.setattr(weights, "download_omdet_turbo", offline)
    result = app.test_cli_runner().invoke(args=["models", "download"])
    assert result.exit_code != 0
    assert "OmDet-Turbo: Could not download" in result.output
    assert "could not download OmDet-Turbo" in result.output
