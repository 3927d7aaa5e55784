"""Importing the models package is cheap: no torch, no model, no directory, no web stack."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_importing_models_loads_no_heavy_or_web_module(tmp_path):
    code = (
        "import sys, models, models.config, models.service, models.worker, models.runtime.weights, "
        "models.prompts, models.result, models.errors\n"
        "config = models.ServiceConfig.from_env()\n"
        "heavy = [m for m in ('torch', 'transformers', 'mobile_sam', 'cv2', 'flask', "
        "'sqlalchemy') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "print(config.model_dir)\n"
    )
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    env.pop("MODEL_DIR", None)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(tmp_path / "cache" / "visionanything" / "models")
    assert not (tmp_path / "cache").exists(), "no directory is created at import"
