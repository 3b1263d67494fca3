"""The DAG builder: a pipeline's DAG with the shared Params and the standard tail (data_quality
-> train -> evaluate -> gate -> promote -> deploy, and after promote split_transform ->
batch_transform (one mapped step per shard) -> join_predictions), its rollback DAG
(rollback -> deploy) and its tuning DAG (the same data preparation and tail, with rounds of
trials of the train step in place of train). A DAG file says only its data preparation (a
function the builder calls once per DAG), its own Params and the channels it hands the tail.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow.sdk import DAG, Asset, Param, ParamsDict
from airflow.sdk.exceptions import ParamValidationError

from operators.lifecycle import DeployOperator, RollbackOperator
from operators.paths import data_root
from operators.pipeline import (
    DEFAULT_SCHEDULE,
    INPUT_MODE,
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
from operators.tuning import TUNING, TuningResultOperator, TuningRoundOperator, tuning_params
from tasks.algorithms import AlgorithmSpec
from tasks.contract import (
    DEPLOY_FOLDER,
    MODEL_ARCHIVE,
    QUALITY_FOLDER,
    STEP_FOLDERS,
    TUNING_FOLDER,
    Step,
)
from tasks.transform_shards import MAX_SHARDS
from tasks.tuning.study import MAX_ROUNDS

TRAIN_FOLDER = STEP_FOLDERS[Step.TRAIN]
MODEL = f"{RUN}/{TRAIN_FOLDER}/{MODEL_ARCHIVE}"
"""The run's trained model (a tuning run's best trial's)."""


@dataclass(frozen=True)
class Tail:
    """What a pipeline's data preparation hands the standard tail (templated URIs)."""

    after: Sequence[Any]
    """The data preparation's last tasks: the tail starts after them."""
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
"""The trigger form's sections after its first (the data and where runs write) and Tuning (the
tuning DAG's), and before Machines; every field but a pipeline's own data fields is in one."""
RANKS = {None: 0, TUNING: 1, TRAINING: 2, GATE: 3, TRANSFORM: 4}


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
    name: str
    """The pipeline's id (its training DAG's): it names the champion, the suite, the assets."""
    spec: AlgorithmSpec
    form: Sequence[str]
    model_asset: Asset
    dataset_asset: Asset

    def _train(self, tail: Tail) -> tuple[Any, Any]:
        train = container_step(
            task_id="train",
            step=Step.TRAIN,
            spec=self.spec,
            channels=self._train_channels(tail),
            output=TRAIN_FOLDER,
            hyperparameters=self._train_hyperparameters(tail),
            extra_hyperparameters=EXTRA_HYPERPARAMETERS,
        )
        return train, train

    def _train_channels(self, tail: Tail) -> dict[str, str]:
        return {"model": "{{ params.initial_model_uri or '' }}", **tail.train_channels}

    def _train_hyperparameters(self, tail: Tail) -> dict[str, str]:
        return {**tail.train_hyperparameters, **form_hyperparameters(self.spec, self.form)}

    def _tuning(self, tail: Tail) -> tuple[Any, Any]:
        """Rounds of trials (round_<k> -> trials_<k>, the train step mapped over the round's
        trials), then tuning_result; a round runs after the round before and its trials, failed
        or not (all_done_min_one_success), and is skipped with every round after it once all
        trials have run."""
        folder = f"{RUN}/{TUNING_FOLDER}"
        job = {
            **{name: "{{ params." + name + " }}" for name in TUNING_FIELDS},
            "search_space": "{{ params.search_space | tojson }}",
            "epochs": form_hyperparameters(self.spec, ["epochs"])["epochs"],
        }
        step = {"algorithm": self.spec.id, "output_uri": folder, "job": job}
        first = previous = None
        rounds: list[Any] = []
        for k in range(MAX_ROUNDS):
            round_k = TuningRoundOperator(
                task_id=f"round_{k}",
                channels=self._train_channels(tail),
                hyperparameters=self._train_hyperparameters(tail),
                extra_hyperparameters=EXTRA_HYPERPARAMETERS,
                warm_start_uri="{{ params.warm_start_uri or '' }}",
                trigger_rule="all_done_min_one_success",
                **step,
            )
            trials = mapped_container_step(
                task_id=f"trials_{k}",
                step=Step.TRAIN,
                spec=self.spec,
                arguments=round_k.output,
                instance_count="{{ params.instance_count }}",
                input_mode=INPUT_MODE,
            )
            if previous is not None:
                previous >> round_k
            round_k >> trials
            first = first or round_k
            previous = [round_k, trials]
            rounds += previous
        result = TuningResultOperator(
            task_id="tuning_result",
            train_uri=f"{RUN}/{TRAIN_FOLDER}",
            # After every round and trial, skipped or failed; it fails when no trial finished.
            trigger_rule="all_done",
            **step,
        )
        rounds >> result
        return first, result

    def tail(self, tail: Tail, *, tuning: bool = False) -> dict[str, Any]:
        """[data_quality ->] train (tuning: the rounds of trials and their result) -> evaluate
        -> gate -> promote -> deploy and the sharded batch transform, after the data
        preparation; returns the tasks by id."""
        spec, pipeline = self.spec, self.name
        first, trained = self._tuning(tail) if tuning else self._train(tail)
        evaluate = container_step(
            task_id="evaluate",
            step=Step.EVALUATE,
            spec=spec,
            channels={
                "model": MODEL,
                **tail.evaluation_channels,
                "champion": champion_template(pipeline),
            },
            output=STEP_FOLDERS[Step.EVALUATE],
        )
        gate, promote = lifecycle_steps(
            spec=spec,
            pipeline=pipeline,
            model=MODEL,
            data_uris=tail.data_uris,
            outlets=[self.model_asset],
        )
        # Batch transform in shards: listed and split once, one mapped step per shard, joined.
        split = SplitTransformOperator(
            task_id="split_transform",
            data_uri=tail.transform_data,
            model_uri=transform_model(pipeline, f"{TRAIN_FOLDER}/{MODEL_ARCHIVE}"),
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
            pipeline=pipeline,
            runner="{{ params.runner }}",
            output_uri=f"{RUN}/{DEPLOY_FOLDER}",
        )
        tasks = [trained, evaluate, gate, promote, deploy, split, batch_transform, joined]
        if tail.profile_uris:  # a new pipeline's data preparation may write no profile yet
            quality = DataQualityOperator(
                task_id="data_quality",
                profile_uris=list(tail.profile_uris),
                models_uri="{{ params.models_uri }}",
                pipeline=pipeline,
                output_uri=f"{RUN}/{QUALITY_FOLDER}",
            )
            quality >> first
            tasks.insert(0, quality)
            first = quality
        list(tail.after) >> first
        trained >> evaluate >> gate >> promote >> [deploy, split]
        batch_transform >> joined
        return {t.task_id: t for t in tasks}


EXTRA_HYPERPARAMETERS = "{{ (params.hyperparameters or {}) | tojson }}"
TUNING_FIELDS = (
    "objective",
    "strategy",
    "max_trials",
    "max_parallel_trials",
    "early_stopping",
    "tuning_seed",
)


def rollback_dag(pipeline: Pipeline, models_uri: str) -> DAG:
    """`<dag_id>_rollback`: the champion pointer back to an earlier champion, then served."""
    dag_id = pipeline.name
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


def _runs_from_defaults(params: Mapping[str, Param]) -> bool:
    """Whether a run with the form's defaults is valid: a scheduled run has nothing else (a
    pipeline with a required field and no default, say its dataset, runs on demand unless a
    schedule is configured; Airflow refuses a schedule for it)."""
    try:
        ParamsDict(dict(params)).validate()
    except ParamValidationError:
        return False
    return True


def pipeline(
    *,
    dag_id: str,
    spec: AlgorithmSpec,
    description: str,
    doc_md: str | None,
    params: Mapping[str, Param],
    prepare: Callable[[], Tail],
    form: Sequence[str] = (),
    tags: Iterable[str] = (),
) -> Pipeline:
    """The pipeline DAG `dag_id`: `prepare()`'s data preparation, then the standard tail. Its
    form: the first of its own `params` (the dataset), the output location, its other own
    params, then the shared ones and the `form` hyperparameters in the sections Training,
    Champion gate, Batch transform and Machines (a key of `params` replaces a shared one in
    place). Its rollback DAG and its tuning DAG (`<dag_id>_tuning`: `prepare()` again, the
    section Tuning, rounds of trials in place of train) are defined beside it."""
    models_uri = f"file://{data_root()}/models"
    model_asset = Asset(name=f"{dag_id}_model")
    dataset_asset = Asset(name=f"{dag_id}_dataset")

    def define(name: str, extra: Mapping[str, Param], about: str, schedule: str | None) -> DAG:
        shared = {**shared_params(spec, name, form, models_uri), **extra}
        own = [k for k in params if k not in shared]
        # The dataset (the first of its own), where runs write, its other own fields, the rest.
        order = [*own[:1], "output_uri", *own[1:], *(k for k in shared if k != "output_uri")]
        sections = {**form_sections(spec, form, models_uri), **dict.fromkeys(extra, TUNING)}
        order.sort(key=lambda k: RANKS[sections.get(k)])  # each section's fields together
        merged = {k: params.get(k, shared.get(k)) for k in order}
        return pipeline_dag(
            dag_id=name,
            spec=spec,
            dataset=dataset_asset if name == dag_id else None,
            description=about,
            doc_md=doc_md,
            params=merged,
            tags=tags,
            sections=sections,
            schedule=schedule if _runs_from_defaults(merged) else None,
        )

    with define(dag_id, {}, description, DEFAULT_SCHEDULE) as dag:
        built = Pipeline(dag, dag_id, spec, tuple(form), model_asset, dataset_asset)
        built.tail(prepare())
    rollback_dag(built, models_uri)
    tuning_about = f"Tuning of {dag_id}: trials of its train step, the best one through its tail"
    with define(f"{dag_id}_tuning", tuning_params(spec), tuning_about, None) as tuning:
        Pipeline(tuning, dag_id, spec, tuple(form), model_asset, dataset_asset).tail(
            prepare(), tuning=True
        )
    return built
