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
from typing import Any
from urllib.parse import unquote

from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from operators.form_schema import Field, field_refusal
from operators.runners import machines_refusal

TRIGGER = re.compile(r"/api/v2/dags/(?P<dag_id>[^/]+)/dagRuns/?$")
BACKFILL = re.compile(r"/api/v2/backfills(?:/dry_run)?/?$")


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
