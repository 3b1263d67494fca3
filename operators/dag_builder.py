"""The DAG builder: a pipeline's DAG with the shared Params and the standard tail (data_quality
-> train -> evaluate -> gate -> promote -> deploy, and after promote split_transform ->
batch_transform (one mapped step per shard) -> join_predictions), and its rollback DAG
(rollback -> deploy). A DAG file says only its data preparation, its own Params and the
channels it hands the tail.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from airflow.sdk import DAG, Asset, Param

from operators.lifecycle import DeployOperator, RollbackOperator
from operators.paths import data_root
from operators.pipeline import (
    RUN,
    START_DATE,
    champion_template,
    container_step,
    form_hyperparameters,
    hyperparameter_params,
    lifecycle_params,
    lifecycle_steps,
    mapped_container_step,
    models_uri_param,
    other_hyperparameters_param,
    pipeline_dag,
    runner_params,
    task_defaults,
    transform_model,
)
from operators.quality import DataQualityOperator
from operators.transform_shards import JoinTransformOperator, SplitTransformOperator
from tasks.algorithms import AlgorithmSpec
from tasks.contract import DEPLOY_FOLDER, MODEL_ARCHIVE, QUALITY_FOLDER, STEP_FOLDERS, Step
from tasks.transform_shards import MAX_SHARDS

MODEL = f"{RUN}/{STEP_FOLDERS[Step.TRAIN]}/{MODEL_ARCHIVE}"
"""The run's trained model."""


@dataclass(frozen=True)
class Tail:
    """What a pipeline's data preparation hands the standard tail (templated URIs)."""

    train_channels: Mapping[str, str]
    """Training's channels; `model` defaults to the form's `initial_model_uri`."""
    evaluation_channels: Mapping[str, str]
    """Evaluation's data channels (the model and the champion are added)."""
    data_uris: Sequence[str]
    """Files whose fingerprint identifies the training data (the gate and the champion record)."""
    transform_data: str = "{{ params.transform_uri or params.dataset_uri }}"
    """Batch transform's input."""
    train_hyperparameters: Mapping[str, str] = field(default_factory=dict)
    """Hyperparameters the data preparation derives (num_classes, num_training_samples, ...)."""
    profile_uris: Sequence[str] = ()
    """The data profile's parts the data preparation wrote (tasks/data/profile.py), validated
    with Great Expectations before training by `expectations/<dag id>.json`; none: no
    data-quality step."""


TRAINING, GATE, TRANSFORM = "Training", "Champion gate", "Batch transform"
"""The trigger form's sections after its first (the data and where runs write) and before
Machines; every field but a pipeline's own data fields is in one."""


def form_sections(spec: AlgorithmSpec, form: Sequence[str], models_uri: str) -> dict[str, str]:
    """Section of each shared field."""
    training = [k for name in form for k in hyperparameter_params(spec, name)]
    transform = ["transform_uri", "transform_shards", "transform_model"]
    gate = [k for k in lifecycle_params(spec, models_uri) if k not in transform]
    return {
        **dict.fromkeys(["initial_model_uri", *training, "hyperparameters"], TRAINING),
        **dict.fromkeys(gate, GATE),
        **dict.fromkeys(transform, TRANSFORM),
    }


def shared_params(
    spec: AlgorithmSpec, dag_id: str, form: Sequence[str], models_uri: str
) -> dict[str, Param]:
    """The Params every pipeline has (a DAG file may override any of them)."""
    return {
        "output_uri": Param(
            f"file://{data_root()}/runs/{dag_id}",
            type="string",
            minLength=1,
            title="Output location",
            description="Where runs write; each run under run=<logical date>/ (or run=<run id>).",
        ),
        "transform_uri": Param(
            None,
            type=["null", "string"],
            title="Images to predict",
            description="Images for batch transform (a folder, file:// or s3://). "
            "Empty: the whole dataset.",
        ),
        "transform_shards": Param(
            1,
            type="integer",
            minimum=1,
            maximum=MAX_SHARDS,
            title="Transform shards",
            description="Batch transform in this many parallel steps, each on a contiguous "
            "share of the images (pods with runner=kubernetes; processes sharing this machine's "
            f"cores locally); at most {MAX_SHARDS} and the number of images.",
        ),
        "initial_model_uri": Param(
            None,
            type=["null", "string"],
            title="Start from model",
            description="A model.tar.gz of this pipeline to continue from (incremental "
            "training; same network and classes). Empty: train from scratch.",
        ),
        **lifecycle_params(spec, models_uri),
        **{k: v for name in form for k, v in hyperparameter_params(spec, name).items()},
        "hyperparameters": other_hyperparameters_param(
            "Any other hyperparameter of the algorithm, as strings (see "
            "algorithms.md); values derived from the data are set by the pipeline."
        ),
    }


@dataclass
class Pipeline:
    """A pipeline DAG being defined: its spec, form hyperparameters and assets."""

    dag: DAG
    spec: AlgorithmSpec
    form: Sequence[str]
    model_asset: Asset
    dataset_asset: Asset

    def tail(self, *, after: Iterable[Any], tail: Tail) -> dict[str, Any]:
        """train -> evaluate -> gate -> promote -> the sharded batch transform after the data prep
        `after`; returns the tasks by id."""
        spec = self.spec
        train = container_step(
            task_id="train",
            step=Step.TRAIN,
            spec=spec,
            channels={"model": "{{ params.initial_model_uri or '' }}", **tail.train_channels},
            output=STEP_FOLDERS[Step.TRAIN],
            hyperparameters={
                **tail.train_hyperparameters,
                **form_hyperparameters(spec, self.form),
            },
            extra_hyperparameters="{{ (params.hyperparameters or {}) | tojson }}",
        )
        evaluate = container_step(
            task_id="evaluate",
            step=Step.EVALUATE,
            spec=spec,
            channels={"model": MODEL, **tail.evaluation_channels, "champion": champion_template()},
            output=STEP_FOLDERS[Step.EVALUATE],
        )
        gate, promote = lifecycle_steps(
            spec=spec, model=MODEL, data_uris=tail.data_uris, outlets=[self.model_asset]
        )
        # Batch transform in shards: listed and split once, one mapped step per shard, joined.
        split = SplitTransformOperator(
            task_id="split_transform",
            data_uri=tail.transform_data,
            model_uri=transform_model(f"{STEP_FOLDERS[Step.TRAIN]}/{MODEL_ARCHIVE}"),
            output_uri=f"{RUN}/{STEP_FOLDERS[Step.TRANSFORM]}",
            shards="{{ params.transform_shards }}",
            trigger_rule="none_failed",  # also when promote was skipped (the champion stayed)
        )
        batch_transform = mapped_container_step(
            task_id="batch_transform", step=Step.TRANSFORM, spec=spec, arguments=split.output
        )
        joined = JoinTransformOperator(
            task_id="join_predictions",
            output_uri=f"{RUN}/{STEP_FOLDERS[Step.TRANSFORM]}",
            split_task_id=split.task_id,
        )
        deploy = DeployOperator(
            task_id="deploy",
            algorithm=spec.id,
            models_uri="{{ params.models_uri }}",
            pipeline="{{ dag.dag_id }}",
            runner="{{ params.runner }}",
            output_uri=f"{RUN}/{DEPLOY_FOLDER}",
        )
        tasks = [train, evaluate, gate, promote, deploy, split, batch_transform, joined]
        first = train
        if tail.profile_uris:  # a new pipeline's data preparation may write no profile yet
            first = DataQualityOperator(
                task_id="data_quality",
                profile_uris=list(tail.profile_uris),
                models_uri="{{ params.models_uri }}",
                pipeline="{{ dag.dag_id }}",
                output_uri=f"{RUN}/{QUALITY_FOLDER}",
            )
            first >> train
            tasks.insert(0, first)
        list(after) >> first
        train >> evaluate >> gate >> promote >> [deploy, split]
        batch_transform >> joined
        return {t.task_id: t for t in tasks}


def rollback_dag(pipeline: Pipeline, models_uri: str) -> DAG:
    """`<dag_id>_rollback`: the champion pointer back to an earlier champion, then served."""
    dag_id = pipeline.dag.dag_id
    with DAG(
        dag_id=f"{dag_id}_rollback",
        description=f"Make an earlier champion of {dag_id} the champion again",
        doc_md=f"Rollback: the champion pointer of `{dag_id}` goes back to the model of "
        "`to_run_id` (empty: the previous champion), as `python -m tasks.lifecycle rollback` "
        "does; then `deploy` serves it again (a new version of the served model).",
        schedule=None,
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args=task_defaults(),
        tags=["vision-pipelines", pipeline.spec.id],
        params={
            "models_uri": models_uri_param(models_uri),
            "to_run_id": Param(
                None,
                type=["null", "string"],
                title="Run to restore",
                description="The run id of the champion to restore; empty: the previous champion.",
            ),
            "runner": runner_params(pipeline.spec)["runner"],
        },
    ) as dag:
        rollback = RollbackOperator(
            task_id="rollback",
            models_uri="{{ params.models_uri }}",
            pipeline=dag_id,
            to_run_id="{{ params.to_run_id or '' }}",
            outlets=[pipeline.model_asset],
        )
        rollback >> DeployOperator(
            task_id="deploy",
            algorithm=pipeline.spec.id,
            models_uri="{{ params.models_uri }}",
            pipeline=dag_id,
            runner="{{ params.runner }}",
            output_uri="{{ params.models_uri }}/" + dag_id + "/" + DEPLOY_FOLDER,
        )
    return dag


@contextmanager
def pipeline(
    *,
    dag_id: str,
    spec: AlgorithmSpec,
    description: str,
    doc_md: str | None,
    params: Mapping[str, Param],
    form: Sequence[str] = (),
    tags: Iterable[str] = (),
) -> Iterator[Pipeline]:
    """The pipeline DAG `dag_id` as the DAG context. Its form: the first of its own `params`
    (the dataset), the output location, its other own params, then the shared ones and the
    `form` hyperparameters in the sections Training, Champion gate, Batch transform and Machines
    (a key of `params` replaces a shared one in place). Its rollback DAG is defined beside it."""
    models_uri = f"file://{data_root()}/models"
    shared = shared_params(spec, dag_id, form, models_uri)
    own = [k for k in params if k not in shared]
    # The dataset (the first of its own), where runs write, its other own fields, the rest.
    order = [*own[:1], "output_uri", *own[1:], *(k for k in shared if k != "output_uri")]
    sections = form_sections(spec, form, models_uri)
    ranks = {None: 0, TRAINING: 1, GATE: 2, TRANSFORM: 3}
    order.sort(key=lambda k: ranks[sections.get(k)])  # each section's fields together
    merged = {k: params.get(k, shared.get(k)) for k in order}
    model_asset = Asset(name=f"{dag_id}_model")
    dataset_asset = Asset(name=f"{dag_id}_dataset")
    with pipeline_dag(
        dag_id=dag_id,
        spec=spec,
        dataset=dataset_asset,
        description=description,
        doc_md=doc_md,
        params=merged,
        tags=tags,
        sections=sections,
    ) as dag:
        built = Pipeline(dag, spec, tuple(form), model_asset, dataset_asset)
        yield built
    rollback_dag(built, models_uri)
