"""ruff checks every Python file of the project (a folder named `data` inside the package too)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUFF = Path(sys.executable).parent / "ruff"


def test_ruff_sees_every_tracked_python_file():
    tracked = subprocess.run(
        ["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    listed = subprocess.run(
        [str(RUFF), "check", "--show-files", "."], cwd=ROOT, capture_output=True, text=True
    ).stdout
    seen = {Path(line.strip()).resolve() for line in listed.splitlines() if line.strip()}
    missing = [p for p in tracked if (ROOT / p).resolve() not in seen]
    assert not missing, f"ruff skips {missing}"
    assert any("tasks/data/" in p for p in tracked)
