"""The deployers: one module each (operators/plugins.py's rule), or entry points of the group
`vision_pipelines.deployers`."""

from __future__ import annotations

from functools import cache

from operators.deployers.base import Deployer
from operators.plugins import collect

GROUP = "vision_pipelines.deployers"


@cache
def deployers() -> dict[str, Deployer]:
    """Every deployer by name."""
    return collect(__name__, __path__, "DEPLOYER", GROUP)


def get_deployer(name: str) -> Deployer:
    """The deployer called `name` (the run's runner); an unknown one names the known ones."""
    known = deployers()
    if name not in known:
        raise ValueError(f"no deployer for runner {name!r}; there are {', '.join(known)}")
    return known[name]
