"""Every DAG parses without errors or connection lookups, and has the documented task graph."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag

from tasks.algorithms import get_algorithm

ROOT = Path(__file__).resolve().parents[2]
PIPELINES = ("image_classification", "image_classification_tf", "semantic_segmentation")


@pytest.fixture(scope="module")
def dagbag(monkeypatch_module):
    return DagBag(dag_folder=str(ROOT / "dags"))


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        # Any connection lookup while parsing fails loudly.
        mp.setenv("AIRFLOW__SECRETS__BACKEND", "")
        yield mp


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert "image_classification" in dagbag.dags


# The champion served (deploy) beside batch transform in shards: split once, one mapped
# container step per shard, joined.
SHARDED_TAIL = {
    "promote": ["deploy", "split_transform"],
    "deploy": [],
    "split_transform": ["batch_transform"],
    "batch_transform": ["join_predictions"],
    "join_predictions": [],
}


def test_image_classification_task_graph(dagbag):
    dag = dagbag.dags["image_classification"]
    edges = {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks}
    assert edges == {
        "make_lst": ["pack_recordio.train", "pack_recordio.validation"],
        "pack_recordio.train": ["data_quality"],
        "pack_recordio.validation": ["data_quality"],
        "data_quality": ["train"],
        "train": ["evaluate"],
        "evaluate": ["gate"],
        "gate": ["promote"],
        **SHARDED_TAIL,
    }
    assert dag.get_task("split_transform").trigger_rule == "none_failed"
    assert dag.params["transform_shards"] == 1
    assert dag.params.get_param("transform_shards").schema["exclusiveMaximum"] == 257
    assert dag.get_task("promote").outlets and not dag.get_task("train").outlets


def test_image_classification_tf_task_graph_and_form(dagbag):
    from tasks.algorithms.image_classification_tf.hub.registry import registry

    dag = dagbag.dags["image_classification_tf"]
    edges = {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks}
    assert edges == {
        "dataset": ["data_quality"],
        "stage_model": ["data_quality"],
        "data_quality": ["train"],
        "train": ["evaluate"],
        "evaluate": ["gate"],
        "gate": ["promote"],
        **SHARDED_TAIL,
    }
    model_id = dag.params.get_param("model_id").schema
    assert model_id["enum"] == sorted(registry())
    assert dag.params["train_only_top_layer"] in (True, False)
    assert dag.get_task("train").algorithm == "image-classification-tf"


def test_semantic_segmentation_task_graph_and_form(dagbag):
    dag = dagbag.dags["semantic_segmentation"]
    edges = {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks}
    assert edges == {
        "layout": ["remap_train", "remap_validation"],
        "remap_train": ["data_quality"],
        "remap_validation": ["data_quality"],
        "data_quality": ["train"],
        "train": ["evaluate"],
        "evaluate": ["gate"],
        "gate": ["promote"],
        **SHARDED_TAIL,
    }
    assert dag.params.get_param("algorithm").schema["enum"] == ["fcn", "psp", "deeplab"]
    assert dag.params.get_param("backbone").schema["enum"] == ["resnet-50", "resnet-101"]
    assert dag.params["num_classes"] == 3
    assert dag.get_task("train").algorithm == "semantic-segmentation"
    assert set(dag.get_task("train").channels) == {
        "train",
        "validation",
        "train_annotation",
        "validation_annotation",
        "model",
    }
    # The form describes segmentation's own evaluation data and per-class metric.
    fixed = dag.params.get_param("eval_uri").description
    assert "validation_annotation/" in fixed and ".rec" not in fixed
    assert "class's iou may fall below the champion's" in (
        dag.params.get_param("max_class_drop").description
    )


def test_the_rollback_dag_restores_a_champion(dagbag):
    dag = dagbag.dags["image_classification_rollback"]
    edges = {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks}
    assert edges == {"rollback": ["deploy"], "deploy": []}
    assert dag.get_task("deploy").trigger_rule == "all_success"
    assert (
        dag.get_task("rollback").outlets
        == dagbag.dags["image_classification"].get_task("promote").outlets
    )
    for name in dag.params:
        assert dag.params.get_param(name).description, name


def test_trigger_form_params_have_descriptions(dagbag):
    params = dagbag.dags["image_classification"].params
    expected = {
        "dataset_uri",
        "initial_model_uri",
        "label_format",
        "output_uri",
        "validation_split",
        "num_layers",
        "image_channels",
        "image_height",
        "image_width",
        "epochs",
        "mini_batch_size",
        "learning_rate",
        "optimizer",
        "runner",
        "trainer_image",
        "gpu_count",
        "hyperparameters",
        "transform_uri",
        "models_uri",
        "eval_uri",
        "min_improvement",
        "max_class_drop",
        "min_primary_metric",
        "transform_model",
    }
    assert expected <= set(params)
    for name in params:
        assert params.get_param(name).description, name
        assert params.get_param(name).schema.get("title"), name
    # Every form labels its fields in words, not with the Params' names.
    for dag_id in PIPELINES:
        titles = {
            n: dagbag.dags[dag_id].params.get_param(n).schema["title"]
            for n in dagbag.dags[dag_id].params
        }
        assert not [t for t in titles.values() if "_" in t], (dag_id, titles)
    assert params.get_param("num_layers").schema["title"] == "Number of layers"
    assert "num_classes" not in params and "num_training_samples" not in params
    assert params.get_param("runner").schema["enum"] == ["local", "kubernetes"]


def test_outputs_are_run_scoped(dagbag):
    dag = dagbag.dags["image_classification"]
    for task_id in ("make_lst", "train", "evaluate", "split_transform", "join_predictions"):
        assert (
            "run_uri(params.output_uri, dag_run.logical_date, run_id)"
            in dag.get_task(task_id).output_uri
        )


def test_pipelines_retrain_daily_unless_configured_and_tuning_and_rollback_run_on_demand(
    dagbag, monkeypatch
):
    """Issue 43: a documented default schedule (so the dialog offers Backfill), `none` for
    manual runs only; the DAGs start paused by Airflow's own rule, not ours."""
    from airflow.timetables.interval import CronDataIntervalTimetable

    from operators.pipeline import DEFAULT_SCHEDULE, schedule_of

    for pipeline in PIPELINES:
        timetable = dagbag.dags[pipeline].timetable
        assert isinstance(timetable, CronDataIntervalTimetable), pipeline
        assert timetable == CronDataIntervalTimetable(DEFAULT_SCHEDULE, timezone="UTC")
        assert dagbag.dags[pipeline].is_paused_upon_creation is None  # [core]'s rule
        for other in (f"{pipeline}_tuning", f"{pipeline}_rollback"):
            assert dagbag.dags[other].schedule is None, other
    monkeypatch.setenv("VISION_PIPELINES_IMAGE_CLASSIFICATION_SCHEDULE", "none")
    assert schedule_of("image_classification", None, DEFAULT_SCHEDULE) is None
    monkeypatch.setenv("VISION_PIPELINES_IMAGE_CLASSIFICATION_SCHEDULE", "0 3 * * 1")
    weekly = schedule_of("image_classification", None, DEFAULT_SCHEDULE)
    assert weekly.summary == "0 3 * * 1"


def test_airflow_layer_never_imports_tensorflow():
    pattern = re.compile(r"^\s*(import|from)\s+(tensorflow|keras|tf_keras|tensorflow_hub)\b", re.M)
    for folder in ("dags", "operators", "plugins"):
        for path in (ROOT / folder).rglob("*.py"):
            assert not pattern.search(path.read_text()), path


def test_parsing_a_dag_file_leaves_the_kubernetes_client_unimported():
    """The DAG processor parses every file again and again: the Kubernetes client (most of a
    parse's time) is imported when a step runs on Kubernetes, not when its DAG is parsed."""
    check = (
        "import runpy, sys\n"
        f"for name in {PIPELINES!r}:\n"
        "    runpy.run_path(f'dags/{name}.py')\n"
        "from operators.runners import runners\n"
        "assert list(runners()) == ['local', 'kubernetes'], list(runners())\n"
        "print(sorted(m for m in sys.modules if m.startswith('kubernetes')))\n"
    )
    parsed = subprocess.run(
        [sys.executable, "-c", check], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert parsed.returncode == 0, parsed.stderr[-2000:]
    assert parsed.stdout.strip() == "[]"


def test_promotion_not_training_updates_the_model_asset(dagbag):
    """A model is announced when the gate promotes it, not when it is trained (issue 12)."""
    dag = dagbag.dags["image_classification"]
    assert [a.name for a in dag.get_task("promote").outlets] == ["image_classification_model"]
    assert dag.get_task("train").outlets == []


def test_output_prefix_renders_with_and_without_a_logical_date(dagbag):
    from datetime import datetime, timezone
    from types import SimpleNamespace

    dag = dagbag.dags["image_classification"]
    template = dag.get_template_env().from_string(dag.get_task("make_lst").output_uri)
    params = {"output_uri": "s3://b/out"}
    manual = template.render(
        params=params,
        dag_run=SimpleNamespace(logical_date=None),
        run_id="manual__2026-01-01T00:00:00+00:00",
    )
    assert manual == "s3://b/out/run=manual__2026-01-01T00_00_00_00_00/lists"
    date = datetime(2026, 2, 1, tzinfo=timezone.utc)
    scheduled = template.render(
        params=params,
        dag_run=SimpleNamespace(logical_date=date),
        run_id="scheduled__2026-02-01T00:00:00+00:00",
    )
    assert scheduled == "s3://b/out/run=20260201T000000/lists"


def test_the_form_accepts_its_own_defaults_and_empty_optional_fields(dagbag):
    """The trigger form sends an empty field as null: every Param must accept its default and
    the optional ones null (the Trigger button stays disabled otherwise)."""
    params = dagbag.dags["image_classification"].params
    for name in params:
        params.get_param(name).resolve()  # raises ParamValidationError when refused
    for name in ("transform_uri", "initial_model_uri"):
        assert params.get_param(name).resolve(None) is None


def test_empty_optional_fields_render_as_unused_channels(dagbag):
    dag = dagbag.dags["image_classification"]
    env = dag.get_template_env()
    params = {"initial_model_uri": None, "label_format": "single-label"}
    model = dag.get_task("train").channels["model"]
    assert env.from_string(model).render(params=params) == ""
    label_format = env.from_string(dag.get_task("make_lst").label_format)
    assert label_format.render(params=params) == ""
    assert label_format.render(params={"label_format": "multi-hot"}) == "multi-hot"


def test_the_image_shape_is_three_number_fields_joined_for_the_trainer(dagbag):
    """Issue 27 item 3: a text field with a pattern refused "3,abc,32" with a regular
    expression; the form now has one number field each, the trainer still gets the reference's
    "channels,height,width", and a run conf that sets image_shape itself (the API) wins."""
    dag = dagbag.dags["image_classification"]
    fields = {n: dag.params.get_param(n).schema for n in ("image_channels", "image_height")}
    assert fields["image_channels"]["enum"] == [1, 3]
    assert fields["image_height"]["type"] == "integer"
    assert not any("pattern" in s for s in fields.values())
    template = dag.get_template_env().from_string(
        dag.get_task("train").hyperparameters["image_shape"]
    )
    shape = {"image_channels": 1, "image_height": 48, "image_width": 64}
    assert template.render(params=shape) == "1,48,64"
    assert template.render(params={**shape, "image_shape": "3,16,16"}) == "3,16,16"
    assert template.render(params={**shape, "image_height": None}) == ""


def test_no_form_field_is_checked_by_a_regular_expression(dagbag):
    """A person cannot read a regular expression in a refusal: structured values get fields."""
    patterned = [
        (dag_id, name)
        for dag_id, dag in dagbag.dags.items()
        for name in dag.params
        if "pattern" in dag.params.get_param(name).schema
    ]
    assert patterned == []


def test_the_input_mode_is_offered_where_the_algorithm_streams(dagbag):
    """[Input mode] on the forms whose trainer can stream its channels; the train task reads it
    (File where the DAG has no such field)."""
    offered = {d: "input_mode" in dagbag.dags[d].params for d in PIPELINES}
    assert offered == {
        d: bool(get_algorithm(dagbag.dags[d].get_task("train").algorithm).streamed_channels)
        for d in PIPELINES
    }
    assert offered["image_classification"] and not offered["image_classification_tf"]
    params = dagbag.dags["image_classification"].params
    assert params["input_mode"] == "File"
    assert params.get_param("input_mode").schema["enum"] == ["File", "Pipe"]
    for dag_id, chosen, rendered in (
        ("image_classification", {"input_mode": "Pipe"}, "Pipe"),
        ("image_classification_tf", {}, "File"),
    ):
        dag = dagbag.dags[dag_id]
        template = dag.get_template_env().from_string(dag.get_task("train").input_mode)
        assert template.render(params=chosen) == rendered


def test_form_defaults_follow_the_deployment_runner(monkeypatch):
    """Local deployments offer the laptop recipe; a cluster deployment the reference's."""
    from operators.pipeline import hyperparameter_param, hyperparameter_params
    from tasks.algorithms import get_algorithm

    spec = get_algorithm("image-classification")

    def shape() -> dict:
        return {k: p.value for k, p in hyperparameter_params(spec, "image_shape").items()}

    monkeypatch.delenv("VISION_PIPELINES_RUNNER", raising=False)
    assert hyperparameter_param(spec, "num_layers").value == 20
    assert shape() == {"image_channels": 3, "image_height": 32, "image_width": 32}
    monkeypatch.setenv("VISION_PIPELINES_RUNNER", "kubernetes")
    assert hyperparameter_param(spec, "num_layers").value == 152
    assert shape() == {"image_channels": 3, "image_height": 224, "image_width": 224}
    monkeypatch.setenv("VISION_PIPELINES_RUNNER", "ssh")
    with pytest.raises(ValueError, match="VISION_PIPELINES_RUNNER='ssh': allowed are local"):
        hyperparameter_param(spec, "epochs")


def test_tasks_retry_infrastructure_failures_within_a_time_limit(dagbag, monkeypatch):
    """Audit: container steps had no retries and no execution timeout."""
    from datetime import timedelta

    from operators.pipeline import task_defaults

    for task in dagbag.dags["image_classification"].tasks:
        assert task.retries == 2 and task.retry_exponential_backoff, task.task_id
        assert task.execution_timeout == timedelta(hours=24), task.task_id
    monkeypatch.setenv("VISION_PIPELINES_RETRIES", "0")
    monkeypatch.setenv("VISION_PIPELINES_TASK_TIMEOUT_MINUTES", "90")
    assert task_defaults()["retries"] == 0
    assert task_defaults()["execution_timeout"] == timedelta(minutes=90)
    monkeypatch.setenv("VISION_PIPELINES_TASK_TIMEOUT_MINUTES", "0")
    with pytest.raises(ValueError, match="VISION_PIPELINES_TASK_TIMEOUT_MINUTES='0'"):
        task_defaults()


def test_retraining_on_dataset_change_is_configured_per_pipeline(monkeypatch):
    from airflow.sdk import Asset, AssetOrTimeSchedule

    from operators.pipeline import schedule_of

    dataset = Asset(name="image_classification_dataset")
    monkeypatch.delenv("VISION_PIPELINES_IMAGE_CLASSIFICATION_SCHEDULE", raising=False)
    monkeypatch.delenv("VISION_PIPELINES_IMAGE_CLASSIFICATION_ON_DATASET_CHANGE", raising=False)
    assert schedule_of("image_classification", dataset) is None
    monkeypatch.setenv("VISION_PIPELINES_IMAGE_CLASSIFICATION_ON_DATASET_CHANGE", "true")
    assert schedule_of("image_classification", dataset) == [dataset]
    monkeypatch.setenv("VISION_PIPELINES_IMAGE_CLASSIFICATION_SCHEDULE", "0 3 * * 1")
    both = schedule_of("image_classification", dataset)
    assert isinstance(both, AssetOrTimeSchedule)


def test_the_example_dataset_producer_updates_the_pipelines_dataset_asset():
    bag = DagBag(dag_folder=str(ROOT / "docs" / "examples"))
    assert bag.import_errors == {}
    outlets = bag.dags["land_new_images"].get_task("land").outlets
    assert [a.name for a in outlets] == ["image_classification_dataset"]


def test_evaluation_and_transform_models_follow_the_form_and_the_champion(dagbag, tmp_path):
    from types import SimpleNamespace

    from tasks.lifecycle.champion import pointer_uri

    dag = dagbag.dags["image_classification"]
    env = dag.get_template_env()
    models = f"file://{tmp_path}"

    def render(task_id: str, channel: str, **params) -> str:
        task = dag.get_task(task_id)
        template = task.model_uri if task_id == "split_transform" else task.channels[channel]
        return env.from_string(template).render(
            params={"output_uri": "s3://b/out", "models_uri": models, **params},
            dag=dag,
            dag_run=SimpleNamespace(logical_date=None),
            run_id="manual__1",
        )

    run = "s3://b/out/run=manual__1"
    assert render("evaluate", "validation", eval_uri=None) == f"{run}/recordio/validation"
    assert render("evaluate", "validation", eval_uri="s3://b/fixed") == "s3://b/fixed"
    assert render("evaluate", "champion") == ""  # no champion yet: the channel is dropped
    assert render("split_transform", "model", transform_model="champion") == (
        f"{run}/train/model.tar.gz"
    )
    pointer = Path(pointer_uri(models, dag.dag_id).removeprefix("file://"))
    pointer.parent.mkdir(parents=True)
    entry = {"model_uri": "s3://m/champion.tar.gz", "run_id": "r"}
    pointer.write_text(json.dumps({"champion": entry, "history": [entry]}))
    assert render("evaluate", "champion") == "s3://m/champion.tar.gz"
    assert render("split_transform", "model", transform_model="champion") == entry["model_uri"]
    assert render("split_transform", "model", transform_model="challenger") == (
        f"{run}/train/model.tar.gz"
    )


def test_no_form_field_has_bounds_the_form_would_clamp_to(dagbag):
    """Airflow's number input silently changes a value outside `minimum`/`maximum`; every
    bounded field says its bounds another way, and why a value is refused in x-allowed."""
    for dag_id in ("image_classification", "image_classification_tf", "semantic_segmentation"):
        params = dagbag.dags[dag_id].params
        for name in params:
            schema = params.get_param(name).schema
            assert not {"minimum", "maximum"} & set(schema), (dag_id, name)
    epochs = dagbag.dags["image_classification"].params.get_param("epochs").schema
    assert epochs["exclusiveMinimum"] == 0 and "x-allowed" in epochs


def test_fields_the_local_runner_does_not_need_are_not_marked_required(dagbag):
    """Airflow's form marks a field required unless its type allows null: [GPUs] and [Other
    hyperparameters] were required on the local runner. Left empty, they mean 1 GPU and none."""
    import jinja2

    from operators.pipeline import GPUS

    for dag_id in ("image_classification", "image_classification_tf", "semantic_segmentation"):
        params = dagbag.dags[dag_id].params
        for name in ("gpu_count", "hyperparameters"):
            assert "null" in params.get_param(name).schema["type"], (dag_id, name)
        train = dagbag.dags[dag_id].get_task("train")
        extra = jinja2.Template(train.extra_hyperparameters)
        assert extra.render(params={"hyperparameters": None}) == "{}"
    gpus = jinja2.Template(GPUS)
    assert [gpus.render(params={"gpu_count": n}) for n in (None, 0, 2)] == ["1", "0", "2"]


def test_the_pipelines_mark_the_data_they_read_with_the_reading_steps_words(dagbag):
    """Every location Param a data-prep step reads carries `x-input` with that step's words."""
    from operators.data_prep import LstGenerationOperator

    inputs = {
        dag_id: sorted(n for n in dag.params if "x-input" in dag.params.get_param(n).schema)
        for dag_id, dag in dagbag.dags.items()
        if not dag_id.endswith("_rollback")
    }
    reads = {
        "image_classification": ["dataset_uri"],
        "image_classification_tf": ["dataset_uri", "pretrained_model_uri", "validation_uri"],
        "semantic_segmentation": ["dataset_uri", "label_map_uri"],
    }
    # A tuning DAG reads what its pipeline reads.
    assert inputs == reads | {f"{dag_id}_tuning": names for dag_id, names in reads.items()}
    schema = dagbag.dags["image_classification"].params.get_param("dataset_uri").schema
    read = LstGenerationOperator.inputs["images_uri"]
    assert (schema["x-input"], schema["x-input-layout"]) == (read.may_hold, read.layout)


def test_the_trigger_forms_fields_come_in_sections(dagbag):
    """Issue 43: 27 fields in one list. The data fields first, then Training, Champion gate,
    Batch transform and Machines, each section's fields together."""
    for dag_id in ("image_classification", "image_classification_tf", "semantic_segmentation"):
        params = dagbag.dags[dag_id].params
        sections = [params.get_param(k).schema.get("section") for k in params]
        order = [s for i, s in enumerate(sections) if i == 0 or s != sections[i - 1]]
        assert order == [None, "Training", "Champion gate", "Batch transform", "Machines"], dag_id
        assert sections[0] is None and params.get_param("epochs").schema["section"] == "Training"


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_each_pipeline_has_a_tuning_dag_with_its_data_preparation_and_tail(dagbag, pipeline):
    """Issue 41: `<dag_id>_tuning` runs the pipeline's data preparation and data quality once,
    rounds of trials of its train step in place of train, then the same tail, for the same
    champion."""
    from tasks.tuning.study import MAX_ROUNDS

    training, tuning = dagbag.dags[pipeline], dagbag.dags[f"{pipeline}_tuning"]
    edges = {t.task_id: sorted(t.downstream_task_ids) for t in tuning.tasks}
    for task in training.tasks:
        if task.task_id != "train":
            expected = ["round_0"] if task.task_id == "data_quality" else task.downstream_task_ids
            assert edges[task.task_id] == sorted(expected), task.task_id
    for k in range(MAX_ROUNDS):
        following = [f"round_{k + 1}"] if k + 1 < MAX_ROUNDS else []
        assert edges[f"round_{k}"] == sorted([f"trials_{k}", "tuning_result", *following])
        assert edges[f"trials_{k}"] == sorted(["tuning_result", *following])
        assert tuning.get_task(f"trials_{k}").partial_kwargs["step"] == "train"
    assert edges["tuning_result"] == ["evaluate"]
    assert tuning.get_task("round_1").trigger_rule == "all_done_min_one_success"
    assert tuning.get_task("tuning_result").trigger_rule == "all_done"
    for task_id in ("data_quality", "gate", "promote", "deploy"):
        assert tuning.get_task(task_id).pipeline == pipeline, task_id
    assert f"'{pipeline}'" in tuning.get_task("evaluate").channels["champion"]
    params = tuning.params
    sections = [params.get_param(k).schema.get("section") for k in params]
    order = [s for i, s in enumerate(sections) if i == 0 or s != sections[i - 1]]
    assert order == [None, "Tuning", "Training", "Champion gate", "Batch transform", "Machines"]
    algorithm = tuning.get_task("round_0").algorithm
    assert params["search_space"] == get_algorithm(algorithm).tuning_ranges
