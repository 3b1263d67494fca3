"""Checks of a run's Params before Airflow creates the run, refusals a person can read.

Airflow validates each Param against its own schema and refuses with a schema dump; and a rule
that ties two fields together ([Machines] above 1 only with a runner that starts several
machines) cannot live in a schema at all. The API server's root middleware `TriggerChecks`
checks a trigger (the form's Trigger button, `POST /api/v2/dags/{dag_id}/dagRuns`) and a backfill
(`POST /api/v2/backfills`) first: each value against its Param's schema, the data the run would
read (a location the deployment allows, that exists), then the rules across Params, and answers
a refusal as Airflow does: 400 with one sentence as `detail` (the field's form title and name,
the value, what is allowed), which the trigger form shows at the top of its dialog. Nothing is
created for a refused run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import unquote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from operators.form_schema import INPUT_KEY, LAYOUT_KEY, Field, field_refusal, label
from operators.runners import machines_refusal
from operators.storage import storage_path
from operators.tuning import TUNING_KEY, tuning_refusal
from tasks.data.layouts import layout_refusal
from tasks.errors import InputError
from tasks.uris import check_uri

TRIGGER = re.compile(r"/api/v2/dags/(?P<dag_id>[^/]+)/dagRuns/?$")
BACKFILL = re.compile(r"/api/v2/backfills(?:/dry_run)?/?$")


def conf_refusal(fields: Mapping[str, Field], conf: Mapping[str, Any]) -> str | None:
    """Why a run with `conf` over these Params is refused, as a sentence naming the fields;
    None when it may run. Each value the conf sets is checked against its Param's schema, then
    the rules that tie Params together."""
    for name in conf:
        if name in fields and (refusal := field_refusal(name, fields[name])):
            return refusal
    for name, field in fields.items():
        if INPUT_KEY in field.schema and (refusal := input_refusal(name, field)):
            return refusal
    for field in fields.values():
        if TUNING_KEY in field.schema:  # a tuning DAG: its job against the algorithm's table
            values = {name: f.value for name, f in fields.items()}
            if refusal := tuning_refusal(values, field.schema):
                return refusal
    if "runner" not in fields or "instance_count" not in fields:
        return None
    try:
        count = int(fields["instance_count"].value)
        return machines_refusal(str(fields["runner"].value), count)
    except (TypeError, ValueError):
        return None  # not a number or an unknown runner: Airflow's schema check names the field


def input_refusal(name: str, field: Field) -> str | None:
    """Why the data a Param names cannot be read, as the step that reads it would say it: a
    location the deployment does not allow, or one that does not exist; None when it may be
    read (or is not given)."""
    uri = field.value.strip() if isinstance(field.value, str) else ""
    if not uri:
        return None
    named = label(name, field.schema)
    try:
        check_uri(uri, named)
    except InputError as e:
        return str(e)
    try:  # through the deployment's aws_conn_id (storage_path names it)
        path = storage_path(uri)
        reason = (
            layout_refusal(path, field.schema.get(LAYOUT_KEY))
            if path.exists()
            else "does not exist"
        )
    except Exception:  # noqa: BLE001 - cannot tell here (credentials, network): the step checks
        return None
    return f"{named} {uri} {reason}; allowed: {field.schema[INPUT_KEY]}" if reason else None


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


MAX_BODY_BYTES = 1 << 20
"""A trigger's or backfill's JSON body: a conf of form values is a few KB."""
BODY_TOO_LARGE = f"the request body is over {MAX_BODY_BYTES} bytes; a run's conf is form values"


class _Undecodable(ValueError):
    """A body no JSON parser should be asked to finish (nested beyond the parser's depth)."""


def request_target(path: str, body: bytes) -> tuple[str, dict[str, Any]] | None:
    """(DAG id, conf) of a trigger or backfill body; None for bodies Airflow rejects itself."""
    try:
        payload = json.loads(body or b"{}")
    except RecursionError:
        raise _Undecodable("the request body nests JSON deeper than Python's parser goes") from None
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
    return dag_id, conf or {}


Authorize = Callable[[Scope, "str | None"], Awaitable[bool]]


async def may_trigger(scope: Scope, dag_id: str | None) -> bool:
    """Whether Airflow would let this request's caller trigger `dag_id` (None: whether it
    authenticates at all): the credential Airflow reads (the Authorization header's bearer
    token, else the `_token` cookie as Starlette parses it), resolved and authorized by
    Airflow's own auth manager."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import (
        DagAccessEntity,
        DagDetails,
    )
    from airflow.api_fastapi.core_api.security import resolve_user_from_token
    from fastapi import HTTPException

    request = Request(scope)
    scheme, _, credential = request.headers.get("authorization", "").partition(" ")
    token = credential if scheme.lower() == "bearer" else request.cookies.get("_token")
    try:
        user = await resolve_user_from_token(token)
    except HTTPException:
        return False
    return dag_id is None or get_auth_manager().is_authorized_dag(
        method="POST",
        access_entity=DagAccessEntity.RUN,
        details=DagDetails(id=dag_id),
        user=user,
    )


class TriggerChecks:
    """ASGI middleware: refuses a trigger or backfill whose Params contradict each other.

    It answers only a caller Airflow has authenticated and would let trigger the DAG; anyone
    else's request passes through untouched, so Airflow's own 401 or 403 comes first and no one
    learns a DAG's Params without the right to run it. Bodies are read up to MAX_BODY_BYTES."""

    def __init__(
        self, app: ASGIApp, params_of: ParamsOf = run_params, authorize: Authorize = may_trigger
    ) -> None:
        self.app = app
        self.params_of, self.authorize = params_of, authorize

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or not (TRIGGER.search(path) or BACKFILL.search(path))
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
            if len(body) > MAX_BODY_BYTES:
                await JSONResponse({"detail": BODY_TOO_LARGE}, 413)(scope, receive, send)
                return
        refusal = await self._refusal(scope, path, body)
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

    async def _refusal(self, scope: Scope, path: str, body: bytes) -> str | None:
        try:
            target = request_target(path, body)
        except _Undecodable as e:  # answered for an authenticated caller only
            return str(e) if await self.authorize(scope, None) else None
        if target is None or not await self.authorize(scope, target[0]):
            return None
        fields = await run_in_threadpool(self.params_of, *target)
        return None if fields is None else conf_refusal(fields, target[1])
