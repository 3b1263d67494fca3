"""The runners: one module each (operators/plugins.py's rule: a new runner is one new public
module here, its helpers private `_` modules), or entry points of the group
`vision_pipelines.runners` in another distribution."""

from __future__ import annotations

from functools import cache

from operators.plugins import collect
from operators.runners.base import StepRunner

GROUP = "vision_pipelines.runners"


@cache
def runners() -> dict[str, StepRunner]:
    """Every runner by name, `local` first (the embedded default). The DAG files need this
    registry when they are parsed: a runner module imports its engine's client only when it
    builds an operator, and its helpers (the Indexed Job's) are private modules."""
    found = collect(__name__, __path__, "RUNNER", GROUP)
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
