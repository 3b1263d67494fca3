"""A tuning job's objective and search space, read from what a user writes in the form and
checked against the algorithm's own hyperparameter table before any trial runs: every refusal
is one sentence naming the field.

A search space is a JSON object, one entry per hyperparameter:
`{"learning_rate": {"type": "continuous", "min": 1e-4, "max": 0.1, "scale": "log"},
"mini_batch_size": {"type": "integer", "min": 8, "max": 64},
"optimizer": {"type": "categorical", "values": ["sgd", "adam"]}}` (the managed service's
continuous, integer and categorical parameter ranges; scale `linear` or `log`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tasks.algorithms.spec import AlgorithmSpec
from tasks.errors import InputError

KINDS = ("continuous", "integer", "categorical")
SCALES = ("linear", "log")
DERIVED = ("num_classes", "num_training_samples", "epochs")
"""Set by the data or by the tuning budget, never searched."""


@dataclass(frozen=True)
class Objective:
    """The metric a tuning job optimizes: `validation:<metric>`, as metrics.json's per-epoch
    `validation_<metric>` reports it."""

    name: str
    maximize: bool

    @property
    def key(self) -> str:
        return "validation_" + self.name.removeprefix("validation:")


def objectives(spec: AlgorithmSpec) -> list[Objective]:
    """The metrics `spec` reports every epoch, with their direction."""
    names = [spec.primary_metric, *spec.metrics]
    return [Objective(f"validation:{n}", spec.higher_is_better) for n in names]


def objective(spec: AlgorithmSpec, name: str | None) -> Objective:
    """The objective named `name` (None: the primary metric's)."""
    known = objectives(spec)
    if name is None:
        return known[0]
    for candidate in known:
        if candidate.name == name:
            return candidate
    allowed = ", ".join(o.name for o in known)
    raise InputError(f"objective {name!r}: {spec.id} does not report it; allowed: {allowed}")


@dataclass(frozen=True)
class Range:
    """One hyperparameter's range: [low, high] (continuous, integer) or `values` (categorical)."""

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    scale: str = "linear"
    values: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        if self.kind == "categorical":
            return {"type": self.kind, "values": list(self.values)}
        return {"type": self.kind, "min": self.low, "max": self.high, "scale": self.scale}

    def holds(self, value: Any) -> bool:
        """`value` (as a study keeps it) lies in this range."""
        if self.kind == "categorical":
            return str(value) in self.values
        return self.low <= float(value) <= self.high

    def text(self, value: Any) -> str:
        """A sampled value as the hyperparameter's string (the container contract's)."""
        if self.kind == "integer":
            return str(int(value))
        if self.kind == "continuous":
            return repr(float(value))
        return str(value)


def _number(name: str, key: str, value: Any, integer: bool) -> float:
    wanted = "a whole number" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InputError(f"search space {name!r}: {key} {value!r} is not {wanted}")
    if integer and value != int(value):
        raise InputError(f"search space {name!r}: {key} {value!r} is not {wanted}")
    return value


def _check_allowed(spec: AlgorithmSpec, name: str, what: str, value: Any) -> None:
    """`value` passes the hyperparameter's own parser (its allowed values), as a trial's would."""
    [hyperparameter] = [h for h in spec.hyperparameters if h.name == name]
    try:
        hyperparameter.parse(str(value))
    except (ValueError, TypeError):
        raise InputError(
            f"search space {name!r}: {what} {value!r} is outside the hyperparameter's allowed "
            f"values ({hyperparameter.allowed})"
        ) from None


def parse_range(spec: AlgorithmSpec, name: str, raw: Any) -> Range:
    """One entry of a search space, checked against `spec`'s table."""
    table = {h.name: h for h in spec.hyperparameters}
    if name not in table:
        raise InputError(
            f"search space {name!r}: {spec.id} has no such hyperparameter; allowed: "
            + ", ".join(n for n in table if n not in DERIVED)
        )
    if name in DERIVED:
        raise InputError(
            f"search space {name!r}: set by the data or the tuning budget, not searched"
        )
    if not isinstance(raw, Mapping):
        raise InputError(f"search space {name!r}: expected an object with a type, got {raw!r}")
    kind = raw.get("type")
    if kind not in KINDS:
        raise InputError(f"search space {name!r}: type {kind!r}; allowed: {', '.join(KINDS)}")
    unknown = sorted(set(raw) - ({"type", "values"} if kind == "categorical" else
                                 {"type", "min", "max", "scale"}))  # fmt: skip
    if unknown:
        raise InputError(f"search space {name!r}: a {kind} range has no {unknown[0]!r}")
    if kind == "categorical":
        values = raw.get("values")
        if not isinstance(values, list) or not values:
            raise InputError(f"search space {name!r}: values must be a non-empty list")
        texts = tuple(str(v) for v in values)
        if len(set(texts)) != len(texts):
            raise InputError(f"search space {name!r}: values {values} repeat a value")
        for value in texts:
            _check_allowed(spec, name, "value", value)
        return Range(name, kind, values=texts)
    integer = kind == "integer"
    if "min" not in raw or "max" not in raw:
        raise InputError(f"search space {name!r}: a {kind} range needs min and max")
    low = _number(name, "min", raw["min"], integer)
    high = _number(name, "max", raw["max"], integer)
    if low > high:
        raise InputError(f"search space {name!r}: min {low} is above max {high}")
    scale = raw.get("scale", "linear")
    if scale not in SCALES:
        raise InputError(f"search space {name!r}: scale {scale!r}; allowed: linear, log")
    if scale == "log" and low <= 0:
        raise InputError(
            f"search space {name!r}: a log scale needs min > 0 (it cannot reach or cross "
            f"zero), got min {low}"
        )
    for what, value in (("min", low), ("max", high)):
        _check_allowed(spec, name, what, int(value) if integer else value)
    return Range(name, kind, float(low), float(high), scale)


def parse_space(spec: AlgorithmSpec, raw: Any) -> dict[str, Range]:
    """A whole search space (None or empty: the reference's recommended ranges)."""
    if raw is None or raw == {}:
        raw = spec.tuning_ranges
    if not isinstance(raw, Mapping):
        raise InputError(f"search space: expected a JSON object of ranges, got {raw!r}")
    if not raw:
        raise InputError(f"search space: {spec.id} has no recommended ranges; name some")
    return {name: parse_range(spec, name, entry) for name, entry in raw.items()}
