"""The images install exactly what the tests ran with, every file checked by its hash."""

from __future__ import annotations

import re
import subprocess
import sys
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
        (
            "scripts/great_expectations.runtime.lock",
            "scripts/great_expectations.lock",
            "docker/airflow/Dockerfile",
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
    assert re.search(r"pip install[^\n]*(\\\n[^\n]*)*--require-hashes", install), dockerfile
    assert re.search(rf"--no-deps -r \S*{Path(runtime).name}", install), dockerfile


def _escapes(python: str, tmp_path: Path) -> bool:
    """Whether `python`'s tarfile data filter lets the CVE-2025-4517 archive out: observed by
    extracting it here, apart from the check's own verdict."""
    script = (
        "import io, sys, tarfile; from pathlib import Path; sys.path.insert(0, sys.argv[1]);"
        "from check_python import attack_archive; d = Path(sys.argv[2], 'dest'); d.mkdir();"
        "t = tarfile.open(fileobj=io.BytesIO(attack_archive(d)))\n"
        "try: t.extractall(d, filter='data')\nexcept Exception: pass\n"
        "print(Path(sys.argv[2], 'escaped').exists())"
    )
    out = subprocess.run(
        [python, "-c", script, str(ROOT / "docker"), str(tmp_path)], capture_output=True, text=True
    )
    return out.stdout.strip() == "True"


def test_images_refuse_a_python_whose_tarfile_lets_the_attack_out(tmp_path):
    """Audit: the archive extraction ran on Python 3.11.7, whose `filter="data"` a symlink
    chain bypasses (CVE-2025-4517). Both images run the attack at build time and refuse such a
    Python; the verdict is the behaviour, not the version string."""
    check = [sys.executable, str(ROOT / "docker/check_python.py")]
    verdict = subprocess.run(check, capture_output=True, text=True)
    escaped = _escapes(sys.executable, tmp_path)
    assert (verdict.returncode != 0) == escaped, verdict
    if sys.version_info[:3] < (3, 11, 13):  # 3.11.7 here: the attack works on it
        assert escaped
        assert "extracted the CVE-2025-4517 archive outside its folder" in verdict.stderr
    for dockerfile in ("docker/airflow/Dockerfile", "docker/trainer/Dockerfile"):
        assert "RUN python3 /tmp/check_python.py" in (ROOT / dockerfile).read_text()


def test_a_python_without_extraction_filters_is_accepted_with_a_note():
    """Debian bookworm's 3.11.2 has no `filter=` (PEP 706 not backported): nothing to bypass.
    Such a Python is this one with tarfile's filters taken away before the check runs."""
    without_filters = (
        "import runpy, sys, tarfile; del tarfile.data_filter; "
        "runpy.run_path(sys.argv[1], run_name='__main__')"
    )
    verdict = subprocess.run(
        [sys.executable, "-c", without_filters, str(ROOT / "docker/check_python.py")],
        capture_output=True,
        text=True,
    )
    assert verdict.returncode == 0, verdict.stderr
    assert "tarfile has no extraction filters (PEP 706)" in verdict.stdout
