"""Scratch directories of a worker process (a video job's local clip, its overlay being
encoded), named after the process so that a later worker can remove those of a process that
died mid-job (killed, out of memory) instead of leaving them in the temporary directory."""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

PREFIX = "visionanything-"
_NAME = re.compile(re.escape(PREFIX) + r"[a-z]+-(\d+)-")


def scratch_dir(kind: str) -> Path:
    """A new private directory ``<tmp>/visionanything-<kind>-<pid>-<random>`` (mode 0700).

    Args:
        kind: lowercase letters naming what it holds ("clip", "video").

    Raises:
        ValueError: ``kind`` is not lowercase letters.
        OSError: the temporary directory cannot be written.
    """
    if not re.fullmatch(r"[a-z]+", kind):
        raise ValueError(f"a scratch kind is lowercase letters, got {kind!r}")
    return Path(tempfile.mkdtemp(prefix=f"{PREFIX}{kind}-{os.getpid()}-"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_orphans(root: Path | None = None) -> list[Path]:
    """Remove the scratch directories (:func:`scratch_dir`) in ``root`` (default: the
    temporary directory) whose process is no longer running; those of live processes, this
    one's included, are kept.

    Returns:
        The directories removed.
    """
    root = Path(root or tempfile.gettempdir())
    removed = []
    for entry in root.glob(PREFIX + "*"):
        match = _NAME.match(entry.name)
        if match and entry.is_dir() and not _alive(int(match[1])):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    if removed:
        log.info("removed %d scratch directories of finished processes", len(removed))
    return removed
