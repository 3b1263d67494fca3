"""Hyperparameters arrive as strings; each algorithm declares its table of `Hyperparameter`s once.

A parser both reads the string and says what it accepts as a JSON schema, so that the Airflow
trigger form (dags/) offers the same choices and ranges as the trainer enforces.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from tasks.errors import InputError
from tasks.limits import MAX_EPOCHS

RESERVED_PREFIXES = ("_", "sagemaker_")


class HyperparameterError(InputError):
    """One hyperparameter that is unknown, missing, of the wrong type or out of range."""


@dataclass(frozen=True)
class Integer:
    low: int | None = None
    high: int | None = None

    def __call__(self, text: str) -> int:
        value = int(text)
        if (self.low is not None and value < self.low) or (
            self.high is not None and value > self.high
        ):
            raise ValueError
        return value

    @property
    def schema(self) -> dict[str, Any]:
        bounds = {"minimum": self.low, "maximum": self.high}
        return {"type": "integer", **{k: v for k, v in bounds.items() if v is not None}}


@dataclass(frozen=True)
class Number:
    low: float
    high: float
    low_open: bool = False

    def __call__(self, text: str) -> float:
        value = float(text)
        if not (self.low < value if self.low_open else self.low <= value) or value > self.high:
            raise ValueError
        return value

    @property
    def schema(self) -> dict[str, Any]:
        low = "exclusiveMinimum" if self.low_open else "minimum"
        return {"type": "number", low: self.low, "maximum": self.high}


@dataclass(frozen=True)
class Choice:
    values: tuple[str, ...]
    case_sensitive: bool = True

    def __call__(self, text: str) -> str:
        for v in self.values:
            if text == v or (not self.case_sensitive and text.lower() == v.lower()):
                return v
        raise ValueError

    @property
    def schema(self) -> dict[str, Any]:
        return {"type": "string", "enum": list(self.values)}


@dataclass(frozen=True)
class IntegerChoice:
    values: tuple[int, ...]

    def __call__(self, text: str) -> int:
        value = int(text)
        if value not in self.values:
            raise ValueError
        return value

    @property
    def schema(self) -> dict[str, Any]:
        return {"type": "integer", "enum": list(self.values)}


@dataclass(frozen=True)
class Pattern:
    """Structured text (a list, a shape): `parse` reads it, `pattern` is the form's check."""

    parse: Callable[[str], Any]
    pattern: str

    def __call__(self, text: str) -> Any:
        return self.parse(text)

    @property
    def schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": self.pattern}


@dataclass(frozen=True)
class Parts:
    """Comma-separated values as the reference writes them ("3,224,224"), each part a
    `Hyperparameter` of its own: the trainer reads the text, the form shows one field per part
    and joins them (operators/pipeline.py)."""

    parts: tuple[Hyperparameter, ...]

    def texts(self, text: str) -> list[str]:
        """The parts' texts, one per part (ValueError for another count)."""
        values = [v.strip() for v in text.split(",")]
        if len(values) != len(self.parts):
            raise ValueError
        return values

    def __call__(self, text: str) -> tuple[Any, ...]:
        return tuple(p.parse(v) for p, v in zip(self.parts, self.texts(text), strict=True))


@dataclass(frozen=True)
class Boolean:
    """ "True"/"False" (any case) and "1"/"0", as the managed service accepts them."""

    def __call__(self, text: str) -> bool:
        lowered = text.strip().lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0"):
            return False
        raise ValueError

    @property
    def schema(self) -> dict[str, Any]:
        return {"type": "boolean"}


def integer(low: int | None = None, high: int | None = None) -> Integer:
    return Integer(low, high)


def number(low: float, high: float, *, low_open: bool = False) -> Number:
    return Number(low, high, low_open)


def choice(*values: str, case_sensitive: bool = True) -> Choice:
    return Choice(tuple(values), case_sensitive)


def integer_choice(*values: int) -> IntegerChoice:
    return IntegerChoice(tuple(values))


boolean = Boolean()


def _int_list(text: str) -> tuple[int, ...]:
    values = tuple(int(v) for v in text.split(","))
    if any(v <= 0 for v in values):
        raise ValueError
    return values


int_list = Pattern(_int_list, r"^\s*\d+(\s*,\s*\d+)*\s*$")
"""Comma-separated positive integers, e.g. "10,20"."""

WORDS = {"lr": "learning rate", "eps": "epsilon", "dtype": "type"}
"""Abbreviations of hyperparameter names spelled out in the form's labels."""


@dataclass(frozen=True)
class Hyperparameter:
    """One hyperparameter: how to parse its string, what is allowed (in words), its default."""

    name: str
    parse: Callable[[str], Any]
    allowed: str
    default: str | None = None
    required: bool = False
    description: str = ""

    @property
    def schema(self) -> dict[str, Any]:
        """What the parser accepts, as JSON schema (a string of any form when it cannot say)."""
        return dict(getattr(self.parse, "schema", {"type": "string"}))

    @property
    def title(self) -> str:
        """The form's label: the name in words ("num_layers" -> "Number of layers")."""
        words = [WORDS.get(w, w) for w in self.name.split("_")]
        if words[0] == "num":
            words[:1] = ["number", "of"]
        text = " ".join(words)
        return text[:1].upper() + text[1:]

    def form_default(self, text: str | None = None) -> Any:
        """`text` (else the default) as the form holds it: parsed, or the text itself for
        structured text (None when there is no default)."""
        text = self.default if text is None else text
        if text is None or self.schema["type"] == "string":
            return text
        return self.parse(text)


UNIT = "a number in [0, 1]"
LEARNING_RATE = number(0, 1, low_open=True)
"""The reference's learning rates: positive, at most 1 (0 trains nothing and reports success)."""
LEARNING_RATE_ALLOWED = "a number in (0, 1]"


def epochs_hyperparameter(default: str) -> Hyperparameter:
    """`epochs`, capped by the deployment (VISION_PIPELINES_MAX_EPOCHS)."""
    return Hyperparameter(
        "epochs",
        integer(1, MAX_EPOCHS),
        f"an integer from 1 to {MAX_EPOCHS} (VISION_PIPELINES_MAX_EPOCHS)",
        default,
        description="Training epochs.",
    )


def early_stopping_params(
    metric: str, *, min_epochs: str, patience: str
) -> tuple[Hyperparameter, ...]:
    """early_stopping and its _min_epochs, _patience and _tolerance, as the managed service names
    them, stopping when validation `metric` stops improving."""
    return (
        Hyperparameter(
            "early_stopping",
            boolean,
            "True or False",
            "False",
            description=f"Stop when validation {metric} stops improving.",
        ),
        Hyperparameter(
            "early_stopping_min_epochs",
            integer(1),
            "a positive integer",
            min_epochs,
            description="Never stop before this many epochs.",
        ),
        Hyperparameter(
            "early_stopping_patience",
            integer(1),
            "a positive integer",
            patience,
            description="Epochs without improvement before stopping.",
        ),
        Hyperparameter(
            "early_stopping_tolerance",
            number(0, 1),
            UNIT,
            "0.0",
            description=f"A relative {metric} improvement below this counts as none.",
        ),
    )


def restore_best_weights_param(metric: str) -> Hyperparameter:
    """restore_best_weights (Keras' name): end on the epoch with the best validation `metric`
    instead of the last one (the managed algorithms keep the last: off by default)."""
    return Hyperparameter(
        "restore_best_weights",
        boolean,
        "True or False",
        "False",
        description=f"Keep the weights of the epoch with the best validation {metric}, not the "
        "last epoch's.",
    )


def parse_hyperparameters(
    raw: Mapping[str, str], table: Sequence[Hyperparameter], *, source: str = "hyperparameters"
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


def to_strings(values: object) -> dict[str, str]:
    """A hyperparameter dataclass back to the managed service's string form (None left out,
    tuples comma-separated)."""
    out = {}
    for f in fields(values):  # type: ignore[arg-type]
        value = getattr(values, f.name)
        if value is None:
            continue
        if isinstance(value, tuple):
            value = ",".join(str(v) for v in value)
        out[f.name] = str(value)
    return out
