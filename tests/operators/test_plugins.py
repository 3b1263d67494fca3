"""Runners and deployers are plug-ins found by one explicit rule (operators/plugins.py): public
modules of their package, or entry points of another distribution; helper modules are private
and never imported to build the registry; and the house has no import circle."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from operators.plugins import collect
from tests.conftest import ROOT


def test_the_registries_hold_the_runners_and_deployers_and_import_no_helper():
    """Building the runner registry (what every DAG file does when it is parsed) imports no
    private helper module and no Kubernetes client."""
    probe = textwrap.dedent(
        """
        import json, sys
        from operators.runners import runners
        from operators.deployers import deployers
        print(json.dumps({
            "runners": list(runners()),
            "deployers": sorted(deployers()),
            "loaded": sorted(m for m in sys.modules
                             if m.startswith("operators.runners._") or m == "kubernetes.client"),
        }))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    import json

    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found == {
        "runners": ["local", "kubernetes"],
        "deployers": ["kubernetes", "local"],
        "loaded": [],
    }


def _package(root: Path, name: str, modules: dict[str, str]) -> Path:
    folder = root / name
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    for module, source in modules.items():
        (folder / f"{module}.py").write_text(textwrap.dedent(source))
    return folder


PLUGIN = """
class Plugin:
    def __init__(self, name):
        self.name = name
"""


def test_a_runner_is_one_public_module_or_an_entry_point_of_another_distribution(
    tmp_path, monkeypatch
):
    folder = _package(
        tmp_path,
        "house_runners",
        {
            "base": PLUGIN,
            "ray": "from house_runners.base import Plugin\nRUNNER = Plugin('ray')\n",
            "_ray_helpers": "raise RuntimeError('a helper is never imported by the registry')\n",
        },
    )
    other = tmp_path / "other-dist"
    other.mkdir()
    (other / "slurm_runner.py").write_text(f"{PLUGIN}\nRUNNER = Plugin('slurm')\n")
    info = other / "slurm_runner-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: slurm-runner\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[house.runners]\nslurm = slurm_runner:RUNNER\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(other))

    found = collect("house_runners", [str(folder)], "RUNNER", "house.runners")
    assert sorted(found) == ["ray", "slurm"]

    (folder / "notes.py").write_text("X = 1\n")  # a public module that is no runner
    with pytest.raises(ValueError, match="house_runners.notes: defines no RUNNER; every public"):
        collect("house_runners", [str(folder)], "RUNNER", "house.runners")
    (folder / "notes.py").unlink()
    (folder / "slurm.py").write_text(
        "from house_runners.base import Plugin\nRUNNER = Plugin('slurm')\n"
    )
    with pytest.raises(ValueError, match="a second plug-in named 'slurm'"):
        collect("house_runners", [str(folder)], "RUNNER", "house.runners")


def _imports(path: Path, package_roots: set[str]) -> set[str]:
    """The project modules `path` imports, anywhere in it (a function's own imports too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        found |= {n for n in names if n.split(".")[0] in package_roots}
    return found


def test_no_module_of_the_house_imports_itself_through_others():
    """Issue 40: the two Kubernetes runner modules imported each other (the house's only import
    circle). Every module of operators/, tasks/, dags/ and plugins/, imports inside functions
    included."""
    roots = {"operators", "tasks", "dags", "plugins"}
    modules = {}
    for root in roots:
        for path in (ROOT / root).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            modules[name.removesuffix(".__init__")] = path
    graph = {
        name: {m for m in _imports(path, roots) if m in modules and m != name}
        for name, path in modules.items()
    }
    # A package's __init__ importing its own submodules is how packages are built, not a circle.
    circles = []
    for start in graph:
        stack = [(start, [start])]
        while stack:
            node, trail = stack.pop()
            for nxt in graph[node]:
                if nxt == start and not all(m.startswith(start + ".") for m in trail[1:]):
                    circles.append(trail + [start])
                elif nxt not in trail and len(trail) < 8:
                    stack.append((nxt, trail + [nxt]))
    assert not circles, circles[:5]
