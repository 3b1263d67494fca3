"""Image build step: refuse a Python whose tarfile lets the CVE-2025-4517 archive out.

Judged by behaviour, not by version string (distributions backport fixes without changing the
version): the archive of the attack (symlinks whose expansion overflows PATH_MAX, then a link
back out of the folder and a file written through it) is extracted with tarfile's `data` filter
into a scratch folder; a Python that writes anything outside that folder is refused. A Python
whose tarfile has no extraction filters at all (PEP 706 not in its build, as Debian bookworm's
3.11.2) is accepted with a note: there is no filter to bypass, and tasks/artifact.py's own
member checks (regular files and folders only, names inside) are what guard our extractions.
Standard library only: it runs on the bare base image. Exit status 1 with the reason, else 0.
"""

from __future__ import annotations

import io
import os
import sys
import tarfile
import tempfile
from pathlib import Path

STEPS = "abcdefghijklmnop"


def _add(tar: tarfile.TarFile, name: str, kind: bytes, link: str = "", data: bytes = b"") -> None:
    member = tarfile.TarInfo(name)
    member.type, member.linkname = kind, link
    member.mode = 0o777 if kind == tarfile.DIRTYPE else 0o644
    member.size = len(data) if kind == tarfile.REGTYPE else 0
    tar.addfile(member, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def attack_archive(dest: Path) -> bytes:
    """The CVE-2025-4517 archive for extraction into `dest`: its names fit PATH_MAX, their
    expansion does not, so an unfixed `realpath` stops expanding and the filter misjudges."""
    path_max = os.pathconf(dest, "PC_PATH_MAX")
    component = "d" * ((path_max - len(str(dest)) - 1) // (len(STEPS) + 1))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        path = ""
        for step in STEPS:
            _add(tar, os.path.join(path, component), tarfile.DIRTYPE)
            _add(tar, os.path.join(path, step), tarfile.SYMTYPE, component)
            path = os.path.join(path, component)
        overflow = os.path.join(*STEPS, "l" * 254)
        _add(tar, overflow, tarfile.SYMTYPE, os.path.join(*[".."] * len(STEPS)))
        _add(tar, "escape", tarfile.SYMTYPE, os.path.join(overflow, ".."))
        _add(tar, "escape/escaped", tarfile.REGTYPE, data=b"out")
    return buffer.getvalue()


def problem() -> str | None:
    """Why this Python is refused, or None."""
    if not hasattr(tarfile, "data_filter"):
        return None
    with tempfile.TemporaryDirectory() as scratch:
        dest = Path(scratch, "dest")
        dest.mkdir()
        archive = attack_archive(dest)
        try:
            with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
                tar.extractall(dest, filter="data")
        except (OSError, tarfile.TarError, KeyError):
            pass  # a fixed tarfile refuses the archive part way
        if Path(scratch, "escaped").exists():
            return (
                f"Python {sys.version.split()[0]} ({sys.executable}): tarfile's data filter "
                "extracted the CVE-2025-4517 archive outside its folder; use a base image whose "
                "Python has the fix (3.11.13, 3.12.11, 3.13.4 or newer, or a distribution's "
                "backport)"
            )
    return None


if __name__ == "__main__":
    reason = problem()
    if reason:
        sys.exit(f"refused: {reason}")
    if not hasattr(tarfile, "data_filter"):
        print(
            f"Python {sys.version.split()[0]}: tarfile has no extraction filters (PEP 706); "
            "tasks/artifact.py's member checks guard extraction"
        )
    else:
        print(f"Python {sys.version.split()[0]}: tarfile's data filter holds against CVE-2025-4517")
