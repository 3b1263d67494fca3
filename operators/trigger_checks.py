"""Checks of a run's Params before Airflow creates the run, refusals a person can read.

Airflow validates each Param against its own schema and refuses with a schema dump; and a rule
that ties two fields together ([Machines] above 1 only with a runner that starts several
machines) cannot live in a schema at all. The API server's root middleware `TriggerChecks`
checks a trigger (the form's Trigger button, `POST /api/v2/dags/{dag_id}/dagRuns`) and a backfill
(`POST /api/v2/backfills`) first: each value against its Param's schema, then the rules across
Params, and answers a refusal as Airflow does: 400 with one sentence as `detail` (the field's
form title and name, the value, what is allowed), which the trigger form shows at the top of its
dialog. Nothing is created for a refused run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from operators.runners import machines_refusal

TRIGGER = re.compile(r"/api/v2/dags/(?P<dag_id>[^/]+)/dagRuns/?$")
BACKFILL = re.compile(r"/api/v2/backfills(?:/dry_run)?/?$")


@dataclass(frozen=True)
class Field:
    """One Param of a run: its value (the DAG's default or the conf's) and its schema."""

    value: Any
    schema: Mapping[str, Any]
    description: str | None = None


ALLOWED_KEY = "x-allowed"
"""A schema keyword of ours (JSON schema ignores unknown ones): what is allowed, in the words the
trainer refuses with (the hyperparameter table's)."""


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
    from airflow.sdk import Param

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


def field_refusal(name: str, field: Field) -> str | None:
    """One sentence when `field`'s value breaks its schema: the form's title, the Param's name,
    the value and what is allowed (Airflow's own refusal is a schema dump)."""
    import jsonschema

    try:
        jsonschema.validate(field.value, field.schema)
    except jsonschema.ValidationError:
        title = field.schema.get("title") or name
        label = f"[{title}] {name}" if title != name else f"[{name}]"
        return f"{label} got {field.value!r}; allowed: {allowed(field.schema, field.description)}"
    except jsonschema.SchemaError:
        return None
    return None


def conf_refusal(fields: Mapping[str, Field], conf: Mapping[str, Any]) -> str | None:
    """Why a run with `conf` over these Params is refused, as a sentence naming the fields;
    None when it may run. Each value the conf sets is checked against its Param's schema, then
    the rules that tie Params together."""
    for name in conf:
        if name in fields and (refusal := field_refusal(name, fields[name])):
            return refusal
    if "runner" not in fields or "instance_count" not in fields:
        return None
    try:
        count = int(fields["instance_count"].value)
        return machines_refusal(str(fields["runner"].value), count)
    except (TypeError, ValueError):
        return None  # not a number or an unknown runner: Airflow's schema check names the field


def run_params(dag_id: str, conf: Mapping[str, Any]) -> dict[str, Field] | None:
    """The Params a run of `dag_id` with `conf` gets, as Airflow merges them; None when the DAG
    is unknown or the conf does not merge (Airflow refuses those itself)."""
    from airflow.models.serialized_dag import SerializedDagModel

    dag = SerializedDagModel.get_dag(dag_id)
    if dag is None:
        return None
    try:
        merged = dag.params.deep_merge(dict(conf))
    except (TypeError, ValueError):
        return None
    return {
        name: Field(param.value, dict(param.schema), param.description)
        for name, param in merged.items()
    }


ParamsOf = Callable[[str, Mapping[str, Any]], "dict[str, Field] | None"]


def request_refusal(path: str, body: bytes, params_of: ParamsOf = run_params) -> str | None:
    """The refusal of a trigger or backfill request, or None (also for bodies Airflow rejects)."""
    try:
        payload = json.loads(body or b"{}")
    except ValueError:
        return None
    if not isinstance(payload, dict):
        return None
    if match := TRIGGER.search(path):
        dag_id, conf = unquote(match["dag_id"]), payload.get("conf")
    elif BACKFILL.search(path):
        dag_id, conf = payload.get("dag_id"), payload.get("dag_run_conf")
    else:
        return None
    if not isinstance(dag_id, str) or not isinstance(conf, dict | None):
        return None
    fields = params_of(dag_id, conf or {})
    return None if fields is None else conf_refusal(fields, conf or {})


def _has_credentials(scope: Scope) -> bool:
    headers = dict(scope.get("headers") or [])
    return b"authorization" in headers or b"_token=" in headers.get(b"cookie", b"")


class TriggerChecks:
    """ASGI middleware: refuses a trigger or backfill whose Params contradict each other.

    Requests without credentials pass through untouched, so Airflow's 401 comes first and an
    anonymous caller learns nothing about a DAG's Params."""

    def __init__(self, app: ASGIApp, params_of: ParamsOf = run_params) -> None:
        self.app = app
        self.params_of = params_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or not (TRIGGER.search(path) or BACKFILL.search(path))
            or not _has_credentials(scope)
        ):
            await self.app(scope, receive, send)
            return
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            more = message.get("more_body", False)
        refusal = await run_in_threadpool(request_refusal, path, body, self.params_of)
        if refusal is not None:
            await JSONResponse({"detail": refusal}, status_code=400)(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)
