"""The images install exactly what the tests ran with, every file checked by its hash."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9._-]+)==(\S+)")
HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}")


def _entries(lock: Path) -> dict[str, str]:
    """name -> the entry's text (continuation lines joined)."""
    text = lock.read_text().replace("\\\n", " ")
    return {
        m.group(1).lower().replace("_", "-"): line
        for line in text.splitlines()
        if (m := PIN.match(line))
    }


@pytest.mark.parametrize(
    ("runtime", "tested", "dockerfile"),
    [
        ("requirements.runtime.lock", "requirements.lock", "docker/airflow/Dockerfile"),
        (
            "docker/trainer/requirements.runtime.lock",
            "docker/trainer/requirements.lock",
            "docker/trainer/Dockerfile",
        ),
    ],
)
def test_runtime_locks_are_hashed_and_match_the_tested_versions(runtime, tested, dockerfile):
    entries = _entries(ROOT / runtime)
    assert entries, runtime
    unhashed = [name for name, line in entries.items() if not HASH.search(line)]
    assert unhashed == [], f"{runtime}: entries without a hash: {unhashed}"
    tested_versions = {
        name: PIN.match(line).group(2) for name, line in _entries(ROOT / tested).items()
    }
    runtime_versions = {name: PIN.match(line).group(2) for name, line in entries.items()}
    differ = {
        name: (version, tested_versions[name])
        for name, version in runtime_versions.items()
        if name in tested_versions and tested_versions[name] != version
    }
    assert differ == {}, f"{runtime} and {tested} disagree (rerun `make lock`): {differ}"
    install = (ROOT / dockerfile).read_text()
    assert "--require-hashes --no-deps \\\n    -r " in install and Path(runtime).name in install


def test_images_refuse_a_python_without_the_tarfile_fixes():
    """Audit: the archive extraction ran on Python 3.11.7, whose `filter="data"` a symlink
    chain bypasses (CVE-2025-4517). Both images check the floor when they are built."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("check_python", ROOT / "docker/check_python.py")
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    assert "3.11.7 lacks the tarfile fixes" in check.problem((3, 11, 7))
    assert "Python 3.11.13 or newer" in check.problem((3, 11, 7))
    assert check.problem((3, 12, 10)) and check.problem((3, 8, 20))
    for fixed in ((3, 11, 13), (3, 12, 11), (3, 13, 4), (3, 14, 0)):
        assert check.problem(fixed) is None, fixed
    for dockerfile in ("docker/airflow/Dockerfile", "docker/trainer/Dockerfile"):
        assert "RUN python /tmp/check_python.py" in (ROOT / dockerfile).read_text()
