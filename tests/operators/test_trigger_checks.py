"""Checks across Params at trigger time: the rule, and the API server middleware that applies it."""

from __future__ import annotations

import json

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from operators.trigger_checks import TriggerChecks, conf_refusal

DEFAULTS = {"runner": "local", "instance_count": 1, "epochs": 3}


def test_several_machines_with_the_local_runner_are_refused_naming_both_fields():
    refusal = conf_refusal({**DEFAULTS, "instance_count": 2})
    assert refusal == (
        "[Machines] instance_count 2 needs a runner that trains on several machines "
        "(kubernetes); [Runner] local trains on one: set [Machines] to 1 or [Runner] to kubernetes"
    )


@pytest.mark.parametrize(
    "params",
    [
        DEFAULTS,
        {**DEFAULTS, "runner": "kubernetes", "instance_count": 4},
        {"epochs": 3},  # a DAG without these Params
        {**DEFAULTS, "instance_count": "many"},  # Airflow's own schema check names it
        {**DEFAULTS, "runner": "nowhere", "instance_count": 2},
    ],
)
def test_what_the_rule_leaves_to_airflow_or_lets_run(params):
    assert conf_refusal(params) is None


@pytest.fixture
def api():
    """A stand-in API server behind the middleware: it echoes the body it received."""
    received = []

    async def trigger(request: Request):
        received.append(await request.body())
        return JSONResponse({"created": True})

    app = Starlette(
        routes=[
            Route("/api/v2/dags/{dag_id}/dagRuns", trigger, methods=["POST"]),
            Route("/api/v2/backfills", trigger, methods=["POST"]),
        ]
    )
    asked = []

    def params_of(dag_id, conf):
        asked.append(dag_id)
        return {**DEFAULTS, **conf} if dag_id == "image_classification" else None

    app.add_middleware(TriggerChecks, params_of=params_of)
    client = TestClient(app, headers={"Authorization": "Bearer t"})
    return client, received, asked


def test_a_contradicting_trigger_is_a_400_with_the_sentence_and_creates_nothing(api):
    client, received, _ = api
    answer = client.post(
        "/api/v2/dags/image_classification/dagRuns", json={"conf": {"instance_count": 3}}
    )
    assert answer.status_code == 400
    assert answer.json()["detail"].startswith("[Machines] instance_count 3 needs a runner")
    assert received == []


def test_a_contradicting_backfill_is_refused_too(api):
    client, received, asked = api
    body = {"dag_id": "image_classification", "dag_run_conf": {"instance_count": 2}}
    answer = client.post("/api/v2/backfills", json=body)
    assert answer.status_code == 400 and "[Runner] local" in answer.json()["detail"]
    assert asked == ["image_classification"] and received == []


@pytest.mark.parametrize(
    "dag_id, conf",
    [
        ("image_classification", {"instance_count": 2, "runner": "kubernetes"}),
        ("image_classification", {}),
        ("another_dag", {"instance_count": 2}),
    ],
)
def test_an_admissible_trigger_reaches_airflow_with_its_body_intact(api, dag_id, conf):
    client, received, _ = api
    body = json.dumps({"conf": conf, "note": "x" * 70000}).encode()  # several ASGI messages
    answer = client.post(f"/api/v2/dags/{dag_id}/dagRuns", content=body)
    assert answer.status_code == 200
    assert received == [body]


def test_an_anonymous_trigger_is_left_to_airflow_s_401(api):
    client, received, asked = api
    client.headers.pop("Authorization")
    answer = client.post(
        "/api/v2/dags/image_classification/dagRuns", json={"conf": {"instance_count": 3}}
    )
    assert answer.status_code == 200 and asked == []  # the stand-in has no auth of its own
