"""What every pipeline DAG shares, so that a DAG file says only what is its own.

The run prefix and its macro, the runner / image / GPU Params, Params generated from the
algorithm's hyperparameter table (choices, ranges, defaults and descriptions as the trainer
checks them), container steps with the per-run runner, and XCom templates.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.sdk import DAG, Asset, AssetOrTimeSchedule, Param
from airflow.timetables.interval import CronDataIntervalTimetable
from airflow.utils.dates import cron_presets

from operators.container import ContainerStepOperator
from operators.form_schema import ALLOWED_KEY, unclamped
from operators.images import allowed_images
from operators.lifecycle import GateOperator, PromoteOperator, champion_model
from operators.paths import run_uri
from operators.refusals import FAIL_REFUSALS_AT_ONCE
from operators.runners import runners
from tasks.algorithms import AlgorithmSpec
from tasks.contract import GATE_FOLDER, QUALITY_FOLDER, STEP_FOLDERS, Step
from tasks.data.profile import PROFILE
from tasks.hyperparameters import Hyperparameter, Parts
from tasks.settings import setting, setting_text
from tasks.streaming import FILE, INPUT_MODES, PIPE

RUN_EXPRESSION = "run_uri(params.output_uri, dag_run.logical_date, run_id)"
RUN = "{{ " + RUN_EXPRESSION + " }}"
"""Everything a run writes lives under this prefix (operators.paths.run_uri)."""


def champion_expression(pipeline: str) -> str:
    """Template expression: `pipeline`'s champion model URI, "" before the first promotion."""
    return f"champion_model(params.models_uri, {pipeline!r})"


GPUS = "{{ 1 if params.gpu_count is none else params.gpu_count }}"
"""Template: the form's [GPUs] (optional; empty: 1)."""
INPUT_MODE = f"{{{{ params.input_mode | default('{FILE}') }}}}"
"""Template: the form's [Input mode] (File where the pipeline has none)."""
START_DATE = datetime(2026, 1, 1, tzinfo=timezone.utc)


def xcom(task_id: str, key: str) -> str:
    """A template for one value of the dict that `task_id` returned."""
    return "{{ ti.xcom_pull(task_ids='" + task_id + "')['" + key + "'] }}"


def deployment_runner() -> str:
    """Where this deployment runs container steps by default: `VISION_PIPELINES_RUNNER`."""
    value = setting_text("VISION_PIPELINES_RUNNER") or "local"
    if value not in runners():
        allowed = ", ".join(runners())
        raise ValueError(f"VISION_PIPELINES_RUNNER={value!r}: allowed are {allowed}")
    return value


def _param(p: Hyperparameter, default_text: str | None, **overrides: Any) -> Param:
    """The form field of `p` with `default_text` (None: the table's default)."""
    schema = p.schema
    default = p.form_default(default_text)
    if default is None:
        schema["type"] = [schema["type"], "null"]
    options = {
        "title": p.title,
        "description": p.description or p.allowed,
        ALLOWED_KEY: p.allowed,  # the refusal's words (operators/trigger_checks.py)
        **schema,
        **overrides,
    }
    return Param(options.pop("default", default), **options)


def _recipe(spec: AlgorithmSpec) -> Mapping[str, str]:
    """The form's defaults: the laptop recipe's where the deployment runs steps locally."""
    return spec.laptop if deployment_runner() == "local" else {}


def hyperparameter_param(spec: AlgorithmSpec, name: str, **overrides: Any) -> Param:
    """A form field for one hyperparameter, as its table defines it (`overrides` win). Its
    default is the laptop recipe's where the deployment runs steps locally, else the table's."""
    return _param(spec.param(name), _recipe(spec).get(name), **overrides)


def hyperparameter_params(spec: AlgorithmSpec, name: str) -> dict[str, Param]:
    """The form's fields of one hyperparameter: itself, or one number field per part of a
    structured value (image_shape: channels, height, width) instead of a text to get right."""
    p = spec.param(name)
    if not isinstance(p.parse, Parts):
        return {name: hyperparameter_param(spec, name)}
    text = p.form_default(_recipe(spec).get(name))
    defaults = [None] * len(p.parse.parts) if text is None else p.parse.texts(text)
    return {part.name: _param(part, d) for part, d in zip(p.parse.parts, defaults, strict=True)}


def form_hyperparameters(spec: AlgorithmSpec, names: Iterable[str]) -> dict[str, str]:
    """Templates that send the form's values of `names` to the trainer (empty ones are left
    out, so the trainer's defaults apply). A structured value's parts are joined as the
    reference writes it; a run conf that sets the value itself (the API, a backfill) wins."""
    templates = {}
    for n in names:
        parse = spec.param(n).parse
        if not isinstance(parse, Parts):
            templates[n] = "{{ '' if params." + n + " is none else params." + n + " }}"
            continue
        parts = ", ".join(f"params.{part.name}" for part in parse.parts)
        templates[n] = (
            f"{{{{ params.{n} if params.{n} is defined and params.{n} "
            f"else '' if none in [{parts}] else [{parts}] | join(',') }}}}"
        )
    return templates


def runner_params(spec: AlgorithmSpec) -> dict[str, Param]:
    """Where the container steps run: runner, image and GPUs, defaults from the environment."""
    images = allowed_images(spec.environment)
    return {
        "runner": Param(
            deployment_runner(),
            type="string",
            enum=list(runners()),
            title="Runner",
            description="Where train, evaluate and batch transform run. "
            + "; ".join(f"{name}: {r.description}" for name, r in runners().items())
            + ".",
        ),
        "trainer_image": Param(
            images[0],
            type="string",
            enum=images,
            title="Trainer image",
            description="Container image of the steps when runner=kubernetes (unused locally); "
            "one of the images this deployment allows.",
        ),
        "gpu_count": Param(
            1,
            type=["null", "integer"],
            minimum=0,
            maximum=16,
            title="GPUs",
            description="GPUs per step pod when runner=kubernetes (0: CPU only; empty: 1; "
            "unused locally).",
        ),
        "instance_count": Param(
            1,
            type="integer",
            minimum=1,
            maximum=64,
            title="Machines",
            description="Machines that train together (synchronous data parallelism; "
            "mini_batch_size is per machine, the global batch mini_batch_size x machines). "
            "More than 1 needs runner=kubernetes: an Indexed Job of that many pods.",
        ),
        **({"input_mode": input_mode_param(spec)} if spec.streamed_channels else {}),
    }


def other_hyperparameters_param(description: str) -> Param:
    """[Other hyperparameters]: any hyperparameter by name, as strings; optional (empty: none)."""
    return Param(
        {}, type=["null", "object"], title="Other hyperparameters", description=description
    )


def input_mode_param(spec: AlgorithmSpec) -> Param:
    """[Input mode]: training channels copied before training (File) or streamed (Pipe)."""
    return Param(
        FILE,
        type="string",
        enum=list(INPUT_MODES),
        values_display={
            FILE: "File: copy the data to the step first",
            PIPE: "Pipe: stream it from storage while training",
        },
        title="Input mode",
        description=f"How training reads {' and '.join(spec.streamed_channels)}: File copies "
        "them to the step's disk before training; Pipe reads them where they lie (s3://) in "
        "ranged reads while training, so data larger than the disk trains and training starts "
        "at once (RecordIO and augmented manifests).",
    )


def task_defaults() -> dict[str, Any]:
    """Every task's retries and time limit, set by the deployment. Infrastructure failures
    (a lost pod, a storage hiccup) are retried with exponential backoff; a user's bad input
    fails at once (operators/refusals.py)."""
    return {
        "retry_policy": FAIL_REFUSALS_AT_ONCE,
        "retries": setting("VISION_PIPELINES_RETRIES", minimum=0),
        "retry_delay": timedelta(
            seconds=setting("VISION_PIPELINES_RETRY_DELAY_SECONDS", minimum=0)
        ),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(hours=1),
        "execution_timeout": timedelta(minutes=setting("VISION_PIPELINES_TASK_TIMEOUT_MINUTES")),
    }


DEFAULT_SCHEDULE = "@daily"
"""A pipeline's retraining schedule unless configured (its DAG paused until someone unpauses
it, as Airflow creates every DAG: `[core] dags_are_paused_at_creation`)."""


def schedule_of(dag_id: str, dataset: Asset | None = None, default: str | None = None) -> Any:
    """`VISION_PIPELINES_<DAG_ID>_SCHEDULE` (cron or preset; `none`: manual runs only), else
    `default`, and with `VISION_PIPELINES_<DAG_ID>_ON_DATASET_CHANGE=true` also (or only) every
    update of the pipeline's dataset asset. A cron schedule has data intervals (Airflow 2's
    cron semantics, whatever `create_cron_data_intervals` says): a manual run's is the last
    complete one, as a scheduled run's, so the gate's backfill rule sees both on the same clock."""
    expression = setting_text(f"VISION_PIPELINES_{dag_id.upper()}_SCHEDULE") or default
    if expression is not None and expression.lower() == "none":
        expression = None
    cron = None
    if expression is not None:
        is_cron = not expression.startswith("@") or expression in cron_presets
        cron = CronDataIntervalTimetable(expression, timezone="UTC") if is_cron else expression
    on_change = setting_text(f"VISION_PIPELINES_{dag_id.upper()}_ON_DATASET_CHANGE") or ""
    if dataset is None or on_change.strip().lower() not in ("1", "true", "yes"):
        return cron
    if cron is None:
        return [dataset]
    return AssetOrTimeSchedule(timetable=cron, assets=[dataset])


def pipeline_dag(
    *,
    dag_id: str,
    spec: AlgorithmSpec,
    description: str,
    doc_md: str | None,
    params: Mapping[str, Param],
    tags: Iterable[str] = (),
    dataset: Asset | None = None,
    sections: Mapping[str, str] | None = None,
    schedule: str | None = None,
) -> DAG:
    """The DAG of one pipeline: its Params plus the runner's (those in the form's section
    Machines, the others in their `sections`), the run-prefix macro, the schedule from
    configuration (else `schedule`), one active run at a time."""
    sections = {**(sections or {}), **dict.fromkeys(runner_params(spec), MACHINES)}
    return DAG(
        dag_id=dag_id,
        description=description,
        doc_md=doc_md,
        schedule=schedule_of(dag_id, dataset, schedule),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args=task_defaults(),
        user_defined_macros={"run_uri": run_uri, "champion_model": champion_model},
        tags=["vision-pipelines", spec.id, *tags],
        # Bounds the form refuses instead of silently changing (operators/trigger_checks.py).
        params={
            k: in_section(unclamped(v), sections.get(k))
            for k, v in {**params, **runner_params(spec)}.items()
        },
    )


MACHINES = "Machines"


def in_section(param: Any, section: str | None) -> Any:
    """`param` shown in the trigger form's section `section` (None: the form's first one)."""
    if section is None or not isinstance(param, Param):
        return param
    schema = {**param.schema, "section": section}
    return Param(param.value, description=param.description, schema=schema)


def container_step(
    *,
    task_id: str,
    step: str,
    spec: AlgorithmSpec,
    channels: Mapping[str, str],
    output: str,
    **kwargs: Any,
) -> ContainerStepOperator:
    """A container step of `spec` writing under `<run prefix>/<output>`, on the per-run runner,
    image and GPU count of the form."""
    return ContainerStepOperator(
        task_id=task_id,
        step=step,
        algorithm=spec.id,
        channels=channels,
        output_uri=f"{RUN}/{output}",
        runner="{{ params.runner }}",
        image="{{ params.trainer_image }}",
        gpus=GPUS,
        instance_count="{{ params.instance_count }}",
        input_mode=INPUT_MODE,
        **kwargs,
    )


def mapped_container_step(
    *, task_id: str, step: str, spec: AlgorithmSpec, arguments: Any, **kwargs: Any
) -> Any:
    """A container step mapped over `arguments` (an upstream result: one dict of channels and
    output_uri per mapped task), on the per-run runner, image and GPU count of the form."""
    return ContainerStepOperator.partial(
        task_id=task_id,
        step=step,
        algorithm=spec.id,
        runner="{{ params.runner }}",
        image="{{ params.trainer_image }}",
        gpus=GPUS,
        **kwargs,
    ).expand_kwargs(arguments)


def models_uri_param(default: str) -> Param:
    """Where a pipeline's champion pointer and promoted models live (the pipeline's form and
    its rollback DAG's)."""
    return Param(
        default,
        type="string",
        minLength=1,
        title="Models location",
        description="Where the champion pointer (<models_uri>/<pipeline>/champion.json) and "
        "promoted models live.",
    )


def lifecycle_params(spec: AlgorithmSpec, models_uri: str) -> dict[str, Param]:
    """The form's fields of the champion/challenger gate and of batch transform's model."""
    metric = spec.primary_metric
    return {
        "models_uri": models_uri_param(models_uri),
        "eval_uri": Param(
            None,
            type=["null", "string"],
            title="Fixed evaluation set",
            description=f"Data every model of this pipeline is scored on: {spec.evaluation_data}. "
            "Empty: the run's validation split (seeded, stable across reruns).",
        ),
        "min_improvement": Param(
            0.0,
            type="number",
            title="Minimum improvement",
            description=f"How much the challenger's {metric} must beat the champion's, both "
            "scored on the same data (0: not worse).",
        ),
        "max_class_drop": Param(
            0.05,
            type="number",
            minimum=0,
            title="Largest per-class drop",
            description=f"How far any one class's {spec.per_class_metric} may fall below the "
            "champion's on the same data (0.05: 5 points); a larger drop keeps the champion.",
        ),
        "min_primary_metric": Param(
            0.0,
            type="number",
            title=f"Floor ({metric})",
            description=f"The {metric} any model must reach to be promoted, the first included.",
        ),
        "no_promotion_on_drift": Param(
            False,
            type="boolean",
            title="No promotion on data drift",
            description="Keep the champion when a drift expectation of the data-quality step "
            "failed (this run's data moved from the data the champion was trained on; the "
            "suite's expectations with meta compare_with=champion). Off: the drift is reported.",
        ),
        "transform_model": Param(
            "champion",
            type="string",
            enum=["champion", "challenger"],
            values_display={
                "champion": "the champion after the gate",
                "challenger": "this run's model, promoted or not",
            },
            title="Batch transform model",
            description="Which model predicts in batch_transform.",
        ),
    }


def lifecycle_steps(
    *,
    spec: AlgorithmSpec,
    pipeline: str,
    model: str,
    data_uris: Iterable[str],
    outlets: Iterable[Any],
) -> tuple[GateOperator, PromoteOperator]:
    """gate (writes `<run>/gate/gate.json`) and promote (skipped when the gate keeps the
    champion of `pipeline`; emits the model asset with the champion's URI when it promotes)."""
    gate = GateOperator(
        task_id="gate",
        algorithm=spec.id,
        evaluation_uri=f"{RUN}/{STEP_FOLDERS[Step.EVALUATE]}",
        models_uri="{{ params.models_uri }}",
        pipeline=pipeline,
        output_uri=f"{RUN}/{GATE_FOLDER}",
        min_improvement="{{ params.min_improvement }}",
        max_class_drop="{{ params.max_class_drop }}",
        floor="{{ params.min_primary_metric }}",
        no_promotion_on_drift="{{ params.no_promotion_on_drift }}",
        quality_uri=f"{RUN}/{QUALITY_FOLDER}",
    )
    promote = PromoteOperator(
        task_id="promote",
        gate_uri=f"{RUN}/{GATE_FOLDER}",
        model_uri=model,
        models_uri="{{ params.models_uri }}",
        pipeline=pipeline,
        data_uris=list(data_uris),
        profile_uri=f"{RUN}/{QUALITY_FOLDER}/{PROFILE}",
        outlets=list(outlets),
        # One promotion at a time across runs (backfills): the pointer is read, then written.
        max_active_tis_per_dag=1,
    )
    gate >> promote
    return gate, promote


def champion_template(pipeline: str) -> str:
    """Template: `pipeline`'s champion model URI ("" before the first promotion)."""
    return "{{ " + champion_expression(pipeline) + " }}"


def run_file_unless(param: str, path: str) -> str:
    """Template: "" when the form's `param` is set, else `<run prefix>/<path>`."""
    return f"{{{{ '' if params.{param} else ({RUN_EXPRESSION} ~ '/{path}') }}}}"


def or_run_file(expression: str, path: str) -> str:
    """Template: `expression` when it renders non-empty, else `<run prefix>/<path>`."""
    return f"{{{{ ({expression}) or ({RUN_EXPRESSION} ~ '/{path}') }}}}"


def transform_model(pipeline: str, model_path: str) -> str:
    """Template: the model batch transform uses, by the form's `transform_model` choice:
    `pipeline`'s champion, or the run's own `<run prefix>/<model_path>` (also before any
    promotion)."""
    champion = champion_expression(pipeline)
    return or_run_file(f"params.transform_model == 'champion' and {champion}", model_path)
