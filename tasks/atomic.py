"""Atomic writes: a file appears complete under its name, or not at all (never half-written)."""

from __future__ import annotations

import glob
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def temporary_name(name: str) -> str:
    """A hidden, unique name to write `name` under before renaming it into place (unique per
    writer: PIDs repeat across containers, where every job is PID 1)."""
    return f".{name}.tmp-{uuid.uuid4().hex[:12]}"


STALE_SECONDS = 24 * 3600
"""A temporary file this old is a dead writer's (a SIGKILL skips the clean-up)."""


def _fsync(path: Path, *, folder: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if folder else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_stale(path: Path) -> None:
    """Temporary files of `path` that killed writers left behind."""
    cutoff = time.time() - STALE_SECONDS
    for stale in path.parent.glob(f".{glob.escape(path.name)}.tmp-*"):
        try:
            if stale.stat().st_mtime < cutoff:
                stale.unlink()
        except OSError:  # another writer's clean-up got there first
            continue


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; when the block succeeds, flush it to disk and
    rename it into place (then flush the folder, so that a crash cannot lose the rename); remove
    it when the block fails. Stale temporary files of earlier, killed writers are removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(path)
    tmp = path.with_name(temporary_name(path.name))
    try:
        yield tmp
        if tmp.is_file():
            _fsync(tmp)
        tmp.replace(path)
        _fsync(path.parent, folder=True)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
