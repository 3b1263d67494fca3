"""Hyperparameters arrive as strings; each algorithm declares its table of `Param`s once."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tasks.errors import InputError

RESERVED_PREFIXES = ("_", "sagemaker_")


class HyperparameterError(InputError):
    """One hyperparameter that is unknown, missing, of the wrong type or out of range."""


@dataclass(frozen=True)
class Param:
    """One hyperparameter: how to parse its string, what is allowed (in words), its default."""

    name: str
    parse: Callable[[str], Any]
    allowed: str
    default: str | None = None
    required: bool = False


def integer(low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if (low is not None and value < low) or (high is not None and value > high):
            raise ValueError
        return value

    return parse


def number(low: float, high: float, *, low_open: bool = False) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = float(text)
        if not (low < value if low_open else low <= value) or value > high:
            raise ValueError
        return value

    return parse


def choice(*values: str, case_sensitive: bool = True) -> Callable[[str], str]:
    def parse(text: str) -> str:
        for v in values:
            if text == v or (not case_sensitive and text.lower() == v.lower()):
                return v
        raise ValueError

    return parse


def boolean(text: str) -> bool:
    """ "True"/"False" (any case) and "1"/"0", as the managed service accepts them."""
    lowered = text.strip().lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise ValueError


def int_list(text: str) -> tuple[int, ...]:
    """Comma-separated positive integers, e.g. "10,20"."""
    values = tuple(int(v) for v in text.split(","))
    if any(v <= 0 for v in values):
        raise ValueError
    return values


def parse_hyperparameters(
    raw: Mapping[str, str], table: Sequence[Param], *, source: str = "hyperparameters"
) -> dict[str, Any]:
    """Parse every value of `raw` by `table`; the first problem raises one clear sentence."""
    by_name = {p.name: p for p in table}
    # The managed service adds its own keys (e.g. `_tuning_objective_metric` for tuning jobs).
    raw = {k: v for k, v in raw.items() if not k.startswith(RESERVED_PREFIXES)}
    unknown = sorted(set(raw) - set(by_name))
    if unknown:
        raise HyperparameterError(
            f"{source}: unknown hyperparameter {unknown[0]!r}; allowed names are "
            + ", ".join(sorted(by_name))
        )
    values: dict[str, Any] = {}
    for p in table:
        text = raw.get(p.name, p.default)
        if text is None:
            if p.required:
                raise HyperparameterError(
                    f"{source}: hyperparameter {p.name!r} is required ({p.allowed})"
                )
            values[p.name] = None
            continue
        try:
            values[p.name] = p.parse(str(text).strip())
        except ValueError as e:
            raise HyperparameterError(
                f"{source}: hyperparameter {p.name!r} got {text!r}; allowed: {p.allowed}"
            ) from e
    return values
