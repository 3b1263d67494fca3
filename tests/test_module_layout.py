"""The code base's names hold: no two modules of tasks/ share a name (outside the algorithm
plug-ins, whose modules are alike by design), and every repository path or module our code and
docs name exists."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUG_IN_PACKAGES = ("tasks/algorithms/", "tasks/classification/")
"""An algorithm package provides the same module names (spec, network, training, serving, ...);
tasks/classification holds what the two classifiers share, under those names."""
SOURCES = ("tasks", "operators", "dags", "plugins", "scripts", "docs")
PATH = re.compile(
    r"(?<![\w/.<>${-])((?:tasks|operators|dags|plugins|scripts|docker|docs)/[\w./-]*\w)"
)
MODULE = re.compile(r"(?<![\w/.-])((?:tasks|operators|dags|plugins)(?:\.[a-z_][a-z0-9_]*)+)")


def _texts() -> list[tuple[Path, str]]:
    files = [ROOT / "README.md", ROOT / "Makefile"]
    for folder in SOURCES:
        files += sorted((ROOT / folder).rglob("*.py")) + sorted((ROOT / folder).rglob("*.md"))
    return [(f, f.read_text(encoding="utf-8")) for f in files]


def _is_module(dotted: str) -> bool:
    """`dotted` is a module, or an attribute of one (tasks.steps.execute)."""
    parts = dotted.split(".")
    for k in range(len(parts), 0, -1):
        path = ROOT.joinpath(*parts[:k])
        if path.with_suffix(".py").exists() or (path / "__init__.py").exists():
            return k >= len(parts) - 1
    return False


def test_no_two_modules_of_tasks_share_a_name():
    modules = defaultdict(list)
    for path in (ROOT / "tasks").rglob("*.py"):
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith(PLUG_IN_PACKAGES) or path.name == "__main__.py":
            continue
        name = path.parent.name if path.name == "__init__.py" else path.stem
        modules[name].append(relative)
    shared = {name: paths for name, paths in modules.items() if len(paths) > 1}
    assert not shared, f"modules sharing a name: {shared}"


def test_every_path_and_module_named_in_code_and_docs_exists():
    missing = []
    for file, text in _texts():
        for number, line in enumerate(text.splitlines(), 1):
            where = f"{file.relative_to(ROOT)}:{number}"
            for match in PATH.finditer(line):
                named = match.group(1).rstrip(".")
                if not re.search(r"[A-Z]{2,}|\*", named) and not (ROOT / named).exists():
                    missing.append(f"{where}: {named}")
            for match in MODULE.finditer(line):
                if not match.group(1).endswith(".py") and not _is_module(match.group(1)):
                    missing.append(f"{where}: {match.group(1)}")
    assert not missing, "named but not there:\n" + "\n".join(missing)
