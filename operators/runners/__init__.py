"""The runners: one module each, collected by name (a new runner is one new module here)."""

from __future__ import annotations

import importlib
import pkgutil
import re
from functools import cache
from pathlib import Path

from operators.runners.base import StepRunner

_DEFINES_RUNNER = re.compile(r"^RUNNER\s*(:[^=]*)?=", re.MULTILINE)


@cache
def runners() -> dict[str, StepRunner]:
    """Every runner of this package by name, `local` first (the embedded default).

    Only modules whose source assigns `RUNNER` at top level are imported (as Airflow's DAG
    discovery safe mode reads a file before importing it): the DAG files need this registry
    when they are parsed, and a runner's helper module (kubernetes_job: the Kubernetes client)
    would add most of a DAG file's parse time."""
    found: dict[str, StepRunner] = {}
    for module in pkgutil.iter_modules(__path__):
        source = Path(__path__[0], f"{module.name}.py")
        if module.ispkg or not _DEFINES_RUNNER.search(source.read_text()):
            continue
        runner = importlib.import_module(f"{__name__}.{module.name}").RUNNER
        found[runner.name] = runner
    return dict(sorted(found.items(), key=lambda item: item[0] != "local"))


def get_runner(name: str) -> StepRunner:
    """The runner called `name`; an unknown one names the known ones."""
    known = runners()
    if name not in known:
        raise ValueError(f"unknown runner {name!r}; allowed are {', '.join(known)}")
    return known[name]


def machines_refusal(runner: str, instance_count: int) -> str | None:
    """Why `instance_count` machines cannot train with `runner`, as a sentence; None if they can."""
    chosen = get_runner(runner)
    if instance_count <= 1 or chosen.several_machines:
        return None
    able = ", ".join(name for name, r in runners().items() if r.several_machines)
    return (
        f"[Machines] instance_count {instance_count} needs a runner that trains on several "
        f"machines ({able}); [Runner] {chosen.name} trains on one: set [Machines] to 1 or "
        f"[Runner] to {able.split(', ')[0]}"
    )
