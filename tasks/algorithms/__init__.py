"""The algorithm registry: every algorithm package's `spec.py` (importable without TensorFlow).

An algorithm is a package with a `spec.py` defining `SPEC` (an AlgorithmSpec): the packages
under `tasks/algorithms/`, and those a deployment adds by name in
`VISION_PIPELINES_ALGORITHM_PACKAGES` (comma-separated importable packages). Everything that
depends on the algorithm (the trainer and job CLIs, evaluate, transform, the container-step
operator, the DAG Params) looks it up here; adding one edits nothing outside its package and its
DAG (docs/architecture.md).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator, Mapping
from functools import cache

from tasks.algorithms.spec import (
    ROLES,
    TRAINER,
    AlgorithmSpec,
    Channels,
    Environment,
    UnknownAlgorithmError,
)
from tasks.settings import setting_text

PACKAGES_ENV = "VISION_PIPELINES_ALGORITHM_PACKAGES"

__all__ = [
    "ALGORITHMS",
    "ROLES",
    "TRAINER",
    "AlgorithmSpec",
    "Channels",
    "Environment",
    "UnknownAlgorithmError",
    "get_algorithm",
]


def _spec_of(package: str) -> AlgorithmSpec:
    try:
        spec = importlib.import_module(f"{package}.spec").SPEC
    except (ImportError, AttributeError) as e:
        raise ValueError(
            f"{PACKAGES_ENV}: {package!r} is not an algorithm package (a package whose spec.py "
            f"defines SPEC): {e}"
        ) from e
    if not isinstance(spec, AlgorithmSpec):
        raise ValueError(f"{package}.spec.SPEC is a {type(spec).__name__}, not an AlgorithmSpec")
    return spec


@cache
def _collect(extra: str) -> dict[str, AlgorithmSpec]:
    packages = [f"{__name__}.{m.name}" for m in pkgutil.iter_modules(__path__) if m.ispkg]
    packages += [p.strip() for p in extra.split(",") if p.strip()]
    found: dict[str, AlgorithmSpec] = {}
    for package in packages:
        spec = _spec_of(package)
        if spec.id in found and found[spec.id].package != spec.package:
            raise ValueError(f"algorithm {spec.id!r} is defined twice: {package} and {found}")
        found[spec.id] = spec
    return found


class _Registry(Mapping[str, AlgorithmSpec]):
    """Algorithm id -> spec, collected on first use (and again when the setting changes)."""

    def _specs(self) -> dict[str, AlgorithmSpec]:
        return _collect(setting_text(PACKAGES_ENV) or "")

    def __getitem__(self, key: str) -> AlgorithmSpec:
        return self._specs()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs())

    def __len__(self) -> int:
        return len(self._specs())


ALGORITHMS: Mapping[str, AlgorithmSpec] = _Registry()


def get_algorithm(algorithm: str) -> AlgorithmSpec:
    """The spec of `algorithm`; an unknown id names every known one."""
    try:
        return ALGORITHMS[algorithm]
    except KeyError:
        raise UnknownAlgorithmError(
            f"unknown algorithm {algorithm!r}; known algorithms: {', '.join(ALGORITHMS)}"
        ) from None
