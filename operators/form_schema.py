"""The form's fields as the person sees them: what a Param's schema allows, in words; bounds
the trigger form does not silently change; one sentence for a value its schema refuses.

Used at DAG parse time (`unclamped`, `ALLOWED_KEY`) and by the API server's trigger checks
(operators/trigger_checks.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jsonschema
from airflow.sdk import Param

from tasks.data.layouts import Input


@dataclass(frozen=True)
class Field:
    """One Param of a run: its value (the DAG's default or the conf's) and its schema."""

    value: Any
    schema: Mapping[str, Any]
    description: str | None = None


ALLOWED_KEY = "x-allowed"
"""A schema keyword of ours (JSON schema ignores unknown ones): what is allowed, in the words the
trainer refuses with (the hyperparameter table's)."""


INPUT_KEY = "x-input"
"""A schema keyword of ours on a Param that names data the run reads: what it may be, in words.
The trigger checks refuse such a location when the deployment does not allow it, it does not
exist, or it is not of the layout `x-input-layout` names (tasks/data/layouts.py), before a run
is made."""
LAYOUT_KEY = "x-input-layout"


def input_location(data: Input) -> dict[str, str]:
    """Schema keywords of a Param naming data the run reads: what it may hold (the words of the
    step that reads it) and its layout."""
    return {INPUT_KEY: data.may_hold, **({LAYOUT_KEY: data.layout} if data.layout else {})}


def allowed(schema: Mapping[str, Any], description: str | None = None) -> str:
    """What a Param's JSON schema allows, in words."""
    if ALLOWED_KEY in schema:
        return str(schema[ALLOWED_KEY])
    if "enum" in schema:
        return "one of " + ", ".join(str(v) for v in schema["enum"] if v is not None)
    kinds = schema.get("type", "string")
    kinds = [kinds] if isinstance(kinds, str) else [k for k in kinds if k != "null"]
    if "integer" in kinds or "number" in kinds:
        noun = "an integer" if "integer" in kinds else "a number"
        low = schema.get("exclusiveMinimum", schema.get("minimum"))
        high = schema.get("exclusiveMaximum", schema.get("maximum"))
        if low is not None and high is not None:
            left = "(" if "exclusiveMinimum" in schema else "["
            right = ")" if "exclusiveMaximum" in schema else "]"
            return f"{noun} in {left}{low:g}, {high:g}{right}"
        if low is not None:
            return f"{noun} {'>' if 'exclusiveMinimum' in schema else '>='} {low:g}"
        if high is not None:
            return f"{noun} {'<' if 'exclusiveMaximum' in schema else '<='} {high:g}"
        return noun
    if "boolean" in kinds:
        return "true or false"
    if "object" in kinds:
        return "a JSON object"
    if "pattern" in schema:
        return description or f"text matching {schema['pattern']}"
    if "minLength" in schema:
        return "a value (it may not be empty)"
    return "text"


def unclamped(param: Any) -> Any:
    """`param` with its bounds where Airflow's form does not clamp to them: its number input
    reads only `minimum`/`maximum` and silently changes a value outside them when the field is
    left (epochs 0 became 1). Integers get the equivalent exclusive bounds, numbers `not`
    clauses; JSON schema (Airflow's check, ours) refuses exactly what it did, and the refusal's
    words are kept in `x-allowed`. Anything but a bounded Param is returned as it is."""
    schema = dict(getattr(param, "schema", None) or {})
    if not isinstance(param, Param) or not {"minimum", "maximum"} & set(schema):
        return param
    schema.setdefault(ALLOWED_KEY, allowed(schema, param.description))
    low, high = schema.pop("minimum", None), schema.pop("maximum", None)
    kinds = schema.get("type", [])
    if "integer" in ([kinds] if isinstance(kinds, str) else kinds):
        if low is not None:
            schema["exclusiveMinimum"] = low - 1
        if high is not None:
            schema["exclusiveMaximum"] = high + 1
    else:
        # `type` inside: a null (an optional field left empty) is not below any bound.
        clauses = [
            {"not": {"type": "number", bound: value}}
            for bound, value in (("exclusiveMaximum", low), ("exclusiveMinimum", high))
            if value is not None
        ]
        schema["allOf"] = [*schema.get("allOf", []), *clauses]
    return Param(param.value, description=param.description, schema=schema)


def label(name: str, schema: Mapping[str, Any]) -> str:
    """How a refusal names a field: `[Title] name` (the form's title, the Param's name)."""
    title = schema.get("title") or name
    return f"[{title}] {name}" if title != name else f"[{name}]"


def field_refusal(name: str, field: Field) -> str | None:
    """One sentence when `field`'s value breaks its schema: the form's title, the Param's name,
    the value and what is allowed (Airflow's own refusal is a schema dump)."""
    try:
        jsonschema.validate(field.value, field.schema)
    except jsonschema.ValidationError:
        return (
            f"{label(name, field.schema)} got {field.value!r}; allowed: "
            f"{allowed(field.schema, field.description)}"
        )
    except jsonschema.SchemaError:
        return None
    return None
