"""Scratch directories of a worker that died mid-job are removed by the next worker."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from models.runtime.scratch import remove_orphans, scratch_dir


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_scratch_dir_names_the_process_and_is_private() -> None:
    path = scratch_dir("clip")
    try:
        assert path.name.startswith(f"visionanything-clip-{os.getpid()}-")
        assert path.stat().st_mode & 0o777 == 0o700
    finally:
        path.rmdir()
    with pytest.raises(ValueError):
        scratch_dir("../x")


def test_only_dead_processes_scratch_is_removed(tmp_path: Path) -> None:
    dead = tmp_path / f"visionanything-clip-{_dead_pid()}-abc"
    (dead / "clip.mp4").parent.mkdir()
    (dead / "clip.mp4").write_bytes(b"\0" * 10)
    live = tmp_path / f"visionanything-video-{os.getpid()}-def"
    live.mkdir()
    other = tmp_path / "someone-elses-dir-1-x"
    other.mkdir()

    assert remove_orphans(tmp_path) == [dead]
    assert not dead.exists() and live.exists() and other.exists()
