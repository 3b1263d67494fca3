"""Each algorithm is one package: none imports a sibling (what two share lives in a shared
package named for what it is), and each has a TensorFlow-free spec.py the registry collects."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = sorted(
    p.name for p in (ROOT / "tasks" / "algorithms").iterdir() if (p / "spec.py").is_file()
)


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.add(node.value.partition(":")[0])  # entry points name modules as strings
    return found


def test_the_registry_collects_every_algorithm_package():
    from tasks.algorithms import ALGORITHMS

    assert sorted(s.package for s in ALGORITHMS.values()) == [
        f"tasks.algorithms.{p}" for p in PACKAGES
    ]
    assert len(PACKAGES) == 3


@pytest.mark.parametrize("package", PACKAGES)
def test_no_algorithm_imports_another(package):
    others = [f"tasks.algorithms.{p}" for p in PACKAGES if p != package]
    for path in (ROOT / "tasks" / "algorithms" / package).rglob("*.py"):
        wrong = sorted(
            m for m in _imports(path) if any(m == o or m.startswith(o + ".") for o in others)
        )
        assert not wrong, f"{path.relative_to(ROOT)} imports {wrong}"


@pytest.mark.parametrize("package", PACKAGES)
def test_a_spec_imports_no_tensorflow(package):
    import subprocess
    import sys

    code = (
        f"import sys; import tasks.algorithms.{package}.spec; "
        "sys.exit(any(m in sys.modules for m in ('tensorflow', 'keras', 'tf_keras')))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
