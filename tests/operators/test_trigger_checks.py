"""Checks across Params at trigger time: the rule, and the API server middleware that applies it."""

from __future__ import annotations

import json

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from operators.form_schema import Field, allowed, unclamped
from operators.trigger_checks import TriggerChecks, conf_refusal
from tests.tasks.test_hyperparameter_schemas import _valid

SCHEMAS = {
    "runner": {"type": "string", "enum": ["local", "kubernetes"], "title": "Runner"},
    "instance_count": {"type": "integer", "minimum": 1, "maximum": 64, "title": "Machines"},
    "epochs": {"type": "integer", "minimum": 1, "title": "Epochs"},
    "learning_rate": {
        "type": "number",
        "exclusiveMinimum": 0,
        "maximum": 1,
        "title": "Learning rate",
    },
    "image_shape": {
        "type": "string",
        "pattern": r"^\s*[13]\s*,\s*\d+\s*,\s*\d+\s*$",
        "title": "Image shape",
    },
}
DEFAULTS = {"runner": "local", "instance_count": 1, "epochs": 3, "learning_rate": 0.1}


DESCRIPTIONS = {"image_shape": "channels,height,width, e.g. 3,224,224"}


def fields(values: dict) -> dict[str, Field]:
    return {k: Field(v, SCHEMAS.get(k, {}), DESCRIPTIONS.get(k)) for k, v in values.items()}


def refusal(**conf):
    return conf_refusal(fields({**DEFAULTS, **conf}), conf)


def test_several_machines_with_the_local_runner_are_refused_naming_both_fields():
    assert refusal(instance_count=2) == (
        "[Machines] instance_count 2 needs a runner that trains on several machines "
        "(kubernetes); [Runner] local trains on one: set [Machines] to 1 or [Runner] to kubernetes"
    )


def test_what_may_run():
    assert refusal() is None
    assert refusal(runner="kubernetes", instance_count=4) is None
    assert conf_refusal(fields({"epochs": 3}), {"epochs": 3}) is None  # no runner Params


@pytest.mark.parametrize(
    "conf, sentence",
    [
        ({"epochs": 0}, "[Epochs] epochs got 0; allowed: an integer >= 1"),
        ({"learning_rate": 0}, "[Learning rate] learning_rate got 0; allowed: a number in (0, 1]"),
        (
            {"learning_rate": "fast"},
            "[Learning rate] learning_rate got 'fast'; allowed: a number in (0, 1]",
        ),
        ({"instance_count": 0}, "[Machines] instance_count got 0; allowed: an integer in [1, 64]"),
        ({"runner": "nowhere"}, "[Runner] runner got 'nowhere'; allowed: one of local, kubernetes"),
        (
            {"image_shape": "3,abc,32"},
            "[Image shape] image_shape got '3,abc,32'; allowed: channels,height,width, "
            "e.g. 3,224,224",
        ),
    ],
)
def test_a_value_its_schema_refuses_is_one_sentence(conf, sentence):
    """Airflow's own refusal is "Invalid input for param ...: ... does not match '^\\s*...'"
    and the schema."""
    assert refusal(**conf) == sentence


def test_allowed_says_every_kind_of_schema_in_words():
    assert allowed({"type": ["null", "integer"], "minimum": 0}) == "an integer >= 0"
    assert allowed({"type": "boolean"}) == "true or false"
    assert allowed({"type": "object"}) == "a JSON object"
    assert allowed({"type": "string", "minLength": 1}) == "a value (it may not be empty)"
    assert allowed({"type": "number", "x-allowed": "a number in (0, 1]"}) == "a number in (0, 1]"


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
        return fields({**DEFAULTS, **conf}) if dag_id == "image_classification" else None

    async def authorize(scope, dag_id):  # Airflow's auth manager stands in: token "t" only
        request = Request(scope)
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token if scheme == "Bearer" else request.cookies.get("_token")
        return token == "t" and dag_id != "not_yours"

    app.add_middleware(TriggerChecks, params_of=params_of, authorize=authorize)
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


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer garbage"},
        {"Cookie": "_token=garbage"},
    ],
)
def test_a_caller_airflow_does_not_authenticate_is_left_to_airflow(api, headers):
    """Hardening, third pass: a garbage token got the Params' refusal (the checks answered
    before Airflow authenticated)."""
    client, received, asked = api
    client.headers.pop("Authorization")
    answer = client.post(
        "/api/v2/dags/image_classification/dagRuns",
        json={"conf": {"instance_count": 3}},
        headers=headers,
    )
    assert answer.status_code == 200 and asked == []  # the stand-in has no auth of its own


def test_a_dag_the_caller_may_not_trigger_is_left_to_airflow_s_403(api):
    client, received, asked = api
    answer = client.post("/api/v2/dags/not_yours/dagRuns", json={"conf": {"instance_count": 3}})
    assert answer.status_code == 200 and asked == []


def test_the_cookie_airflow_reads_is_the_one_checked(api):
    """Hardening, third pass: with two Cookie headers the checks read the last one (no token:
    passed through) while Airflow read the first (the token): a refused conf ran."""
    client, received, _ = api
    client.headers.pop("Authorization")
    answer = client.post(
        "/api/v2/dags/image_classification/dagRuns",
        content=json.dumps({"conf": {"instance_count": 3}}).encode(),
        headers=[("content-type", "application/json"), ("cookie", "_token=t"),
                 ("cookie", "theme=dark")],
    )  # fmt: skip
    assert answer.status_code == 400 and received == []


@pytest.mark.parametrize(
    "body, status, words",
    [
        (b"[" * 20000, 400, "nests JSON deeper"),
        (b'{"conf": {}, "note": "' + b"x" * (2 << 20) + b'"}', 413, "over 1048576 bytes"),
    ],
)
def test_bodies_are_bounded_before_they_are_parsed(api, body, status, words):
    """Hardening, third pass: 20 KB of "[" was a RecursionError 500; a 96 MiB body cost 11 s of
    CPU."""
    client, received, _ = api
    answer = client.post("/api/v2/dags/image_classification/dagRuns", content=body)
    assert answer.status_code == status and words in answer.json()["detail"]
    assert received == []


def test_bounds_move_where_the_form_does_not_clamp_and_refuse_the_same_values():
    """Airflow's number input clamps to `minimum`/`maximum` when the field is left (epochs 0
    became 1 and ran); the equivalent bounds it does not read make the form refuse instead."""
    from airflow.sdk import Param

    count = unclamped(Param(1, type="integer", minimum=1, maximum=64, title="Machines"))
    assert not {"minimum", "maximum"} & set(count.schema)
    assert [_valid(count.schema, v) for v in (0, 1, 64, 65)] == [False, True, True, False]
    assert count.schema["x-allowed"] == "an integer in [1, 64]"
    split = unclamped(Param(0.2, type="number", minimum=0.01, maximum=0.9, description="x"))
    assert not {"minimum", "maximum"} & set(split.schema) and split.description == "x"
    assert [_valid(split.schema, v) for v in (0.005, 0.01, 0.9, 0.95)] == [
        False,
        True,
        True,
        False,
    ]
    optional = unclamped(Param(None, type=["null", "number"], minimum=0))
    assert _valid(optional.schema, None) and not _valid(optional.schema, -1)
    plain = Param("a", type="string")
    assert unclamped(plain) is plain


DATASET = {"type": ["null", "string"], "title": "Dataset", "x-input": "a folder of class folders"}


def test_data_the_run_would_read_must_exist_and_be_allowed_before_a_run_is_made(
    tmp_path, monkeypatch
):
    """Issue 43: a missing dataset and file:///etc started runs (the latter walked /etc before
    failing). Now the trigger is refused in one sentence, with the words the reading step uses."""
    monkeypatch.delenv("VISION_PIPELINES_ALLOWED_URIS", raising=False)
    (tmp_path / "shapes" / "circle").mkdir(parents=True)

    def checked(value):
        return conf_refusal({"dataset_uri": Field(value, DATASET)}, {"dataset_uri": value})

    missing = f"file://{tmp_path}/no-such-dataset"
    assert checked(missing) == (
        f"[Dataset] dataset_uri {missing} does not exist; allowed: a folder of class folders"
    )
    assert checked(f"file://{tmp_path}/shapes") is None
    assert checked("") is None and checked(None) is None  # not given: the step's default rules
    monkeypatch.setenv("VISION_PIPELINES_ALLOWED_URIS", f"file://{tmp_path}/")
    assert checked("file:///etc") == (
        "[Dataset] dataset_uri 'file:///etc' is outside the locations this deployment allows: "
        f"file://{tmp_path} (VISION_PIPELINES_ALLOWED_URIS)"
    )


@pytest.mark.parametrize(
    ("layout", "made", "target", "reason"),
    [
        ("class-folders-or-manifest", "etc/ssh/config", "etc", "holds no class folder with images"),
        ("class-folders-or-manifest", "loose/a.jpg", "loose", "holds no class folder with images"),
        ("class-folders-or-manifest", "notes.txt", "notes.txt", "is a file but not a manifest"),
        ("class-folders", "notes.txt", "notes.txt", "is not a folder"),
        ("segmentation", "scenes/train/a.jpg", "scenes", "has no train_annotation/ folder"),
        ("file", "scenes/train/a.jpg", "scenes", "is not a file"),
    ],
)
def test_data_of_another_layout_is_refused_before_a_run_is_made(
    tmp_path, layout, made, target, reason
):
    """Issue 43: with no allow-list, file:///etc started a run that walked /etc for 8 s before
    failing; a location that exists but holds no data of the step's layout is refused at once."""
    (tmp_path / made).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / made).write_bytes(b"x")
    uri = f"file://{tmp_path / target}"
    schema = {**DATASET, "x-input-layout": layout}
    refusal = conf_refusal({"dataset_uri": Field(uri, schema)}, {"dataset_uri": uri})
    assert refusal == f"[Dataset] dataset_uri {uri} {reason}; allowed: a folder of class folders"


def test_data_of_the_steps_layout_passes(tmp_path):
    (tmp_path / "shapes" / "circle").mkdir(parents=True)
    (tmp_path / "shapes" / "circle" / "0.png").write_bytes(b"\x89PNG")
    (tmp_path / "train.manifest").write_text("{}\n")
    for name in ("train", "train_annotation", "validation", "validation_annotation"):
        (tmp_path / "scenes" / name).mkdir(parents=True)
    for layout, target in (
        ("class-folders", "shapes"),
        ("class-folders-or-manifest", "shapes"),
        ("class-folders-or-manifest", "train.manifest"),
        ("segmentation", "scenes"),
        ("file", "train.manifest"),
    ):
        uri = f"file://{tmp_path}/{target}"
        schema = {**DATASET, "x-input-layout": layout}
        assert conf_refusal({"d": Field(uri, schema)}, {"d": uri}) is None, (layout, target)


def tuning_fields(conf: dict) -> dict[str, Field]:
    """The tuning DAG's fields of image classification (its own Params) with `conf` set."""
    from operators.tuning import tuning_params
    from tasks.algorithms import get_algorithm

    params = tuning_params(get_algorithm("image-classification"))
    values = {name: p.value for name, p in params.items()} | {"epochs": 3} | conf
    return {
        k: Field(v, dict(params[k].schema) if k in params else {}, None) for k, v in values.items()
    }


LR = {"type": "continuous", "min": 1e-4, "max": 0.1, "scale": "log"}


@pytest.mark.parametrize(
    ("conf", "words"),
    [
        (
            {"search_space": {"learning_rate": {**LR, "max": 2.0}}},
            "search space 'learning_rate': max 2.0 is outside",
        ),
        ({"search_space": {"learning_rate": {**LR, "min": 0.5}}}, "min 0.5 is above max 0.1"),
        (
            {"search_space": {"learnin_rate": LR}},
            "search space 'learnin_rate': image-classification has no such",
        ),
        (
            {
                "search_space": {
                    "momentum": {"type": "continuous", "min": 0, "max": 0.9, "scale": "log"}
                }
            },
            "a log scale needs min > 0",
        ),
        (
            {"objective": "validation:mIoU"},
            "[Objective metric] objective got 'validation:mIoU'; allowed: one of "
            "validation:accuracy",
        ),
        (
            {"max_trials": 2, "max_parallel_trials": 3},
            "max_parallel_trials 3: allowed: 1 to max_trials (2)",
        ),
        ({"max_trials": 100, "max_parallel_trials": 1}, "max_trials 100: 1 at a time"),
    ],
)
def test_a_bad_tuning_job_is_refused_before_a_run_with_the_field_named(conf, words):
    sentence = conf_refusal(tuning_fields(conf), conf)
    assert sentence is not None and words in sentence, sentence
    assert "\n" not in sentence


def test_the_default_tuning_job_may_run():
    assert conf_refusal(tuning_fields({}), {}) is None
