"""GPU steps (train, evaluate, batch transform): the runner-agnostic step operator and the one
factory that hands a step to the runner a run chose (operators/runners/).

Every runner runs the same `python -m tasks.job ...` command line with the same ml-root layout;
only the ml-root's place differs (`/opt/ml` in a pod, a run-scoped folder on local disk).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, TaskDeferred

from operators.connections import use_aws_connection
from operators.paths import PROJECT_ROOT, run_key
from operators.refusals import refuse
from operators.run_record import RunStepOperator, record_run
from operators.runners import get_runner, machines_refusal
from operators.runners.base import ContainerStep, StepRequest, StepRunner
from operators.storage import remove_prefix, storage_path
from tasks.algorithms import get_algorithm
from tasks.contract import (
    EXIT_BAD_INPUT,
    MODEL_ARCHIVE,
    STEP_RESULTS,
    SUMMARY,
    Step,
)
from tasks.settings import setting_text
from tasks.streaming import FILE, INPUT_MODES, MODE_KEY, PIPE


def container_task(
    *,
    task_id: str,
    step: ContainerStep,
    runner: str = "local",
    image: str | None = None,
    gpus: int = 1,
    instance_count: int = 1,
    local_ml_root: str | None = None,
    deferrable: bool = False,
) -> BaseOperator:
    """The one place a container step becomes an operator: the chosen runner's, in the
    environment the step's algorithm needs (tasks/algorithms/)."""
    request = StepRequest(
        task_id=task_id,
        step=step,
        environment=get_algorithm(step.algorithm).environment,
        image=image,
        gpus=gpus,
        instance_count=instance_count,
        local_ml_root=local_ml_root,
        deferrable=deferrable,
    )
    chosen = get_runner(str(runner))
    if refusal := machines_refusal(chosen.name, instance_count):
        raise refuse(refusal)
    return chosen.build(request)


def step_hyperparameters(extra: Mapping[str, Any] | str, own: Mapping[str, Any]) -> dict[str, str]:
    """A step's hyperparameters as strings: the form's other hyperparameters (a JSON object),
    then the pipeline's and the form's own, which win; empty ones are left out (the trainer's
    defaults apply)."""
    if isinstance(extra, str):
        extra = json.loads(extra) if extra.strip() else {}
    if not isinstance(extra, Mapping):
        raise refuse(f"hyperparameters must be a JSON object, got {extra!r}")
    return {k: str(v) for k, v in {**extra, **own}.items() if v not in (None, "")}


class ContainerStepOperator(RunStepOperator):
    """A container step whose runner, image and GPU count are chosen per run (DAG Params).

    The runner (operators/runners/) builds the operator that runs the step; one that defers
    (a pod: no worker slot is held while it trains), once or again, is resumed in
    `execute_complete` only: on a freshly built operator, with the trigger's event and the name
    of the method it deferred to (carried in the deferral's kwargs, never in attributes of the
    instance that deferred: a triggerer or worker restart resumes on another).
    A failed step is failed without retry when it reports bad input (exit code 2 in its
    `summary.json`) and retried otherwise (internal error, or a step that never reported).

    :param step: train, evaluate or transform.
    :param algorithm: the algorithm id (tasks/algorithms/).
    :param channels: channel name -> URI (templated).
    :param output_uri: where model/ and output/ are uploaded (templated).
    :param hyperparameters: values derived by the pipeline or chosen in the form (templated).
    :param extra_hyperparameters: any other hyperparameters; never override the above (templated).
    :param runner: `local` or `kubernetes` (templated).
    :param image: trainer image for the kubernetes runner; empty: the algorithm's (templated).
    :param gpus: GPUs per pod (templated).
    :param instance_count: machines that train together; other steps run on one (templated).
    :param input_mode: `File` (channels copied to the ml-root first) or `Pipe` (the training
        channels the algorithm can stream are read where they lie); training only (templated).
    :param checkpoint_uri: where the step's checkpoints are kept between jobs, so that a later
        one resumes (a continued tuning trial); empty: in the step only (templated).
    :param deferrable: run pods deferred (runner=kubernetes).
    """

    template_fields: Sequence[str] = (
        "channels",
        "output_uri",
        "hyperparameters",
        "extra_hyperparameters",
        "runner",
        "image",
        "gpus",
        "instance_count",
        "input_mode",
        "checkpoint_uri",
    )

    def __init__(
        self,
        *,
        step: str,
        algorithm: str = "image-classification",
        channels: Mapping[str, str],
        output_uri: str,
        hyperparameters: Mapping[str, Any] | None = None,
        extra_hyperparameters: Mapping[str, Any] | str | None = None,
        runner: str = "local",
        image: str = "",
        gpus: int | str = 1,
        instance_count: int | str = 1,
        input_mode: str = FILE,
        checkpoint_uri: str = "",
        deferrable: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if step not in STEP_RESULTS:
            raise ValueError(f"step must be one of {', '.join(STEP_RESULTS)}, got {step!r}")
        # An unknown algorithm fails the DAG file with the known ones (a ValueError).
        self.step, self.algorithm = Step(step), get_algorithm(algorithm).id
        self.channels, self.output_uri = channels, output_uri
        self.hyperparameters = hyperparameters or {}
        self.extra_hyperparameters = extra_hyperparameters or {}
        self.runner, self.image, self.gpus = runner, image, gpus
        self.instance_count = instance_count
        self.input_mode, self.checkpoint_uri = input_mode, checkpoint_uri
        self.deferrable = deferrable

    def build(self, context: Any) -> BaseOperator:
        """The operator that runs this step, for the rendered runner."""
        # A channel whose URI renders empty is not used in this run (e.g. no initial model).
        channels = {k: str(v) for k, v in self.channels.items() if str(v).strip()}
        step = ContainerStep(
            step=self.step.value,
            algorithm=self.algorithm,
            channels=channels,
            output_uri=self._output,
            hyperparameters=step_hyperparameters(self.extra_hyperparameters, self.hyperparameters),
            input_data_config=self._input_data_config(channels),
            checkpoint_uri=str(self.checkpoint_uri or "").strip(),
        )
        work = Path(setting_text("VISION_PIPELINES_WORK_DIR") or PROJECT_ROOT / "data" / "work")
        key = run_key(context.get("logical_date"), context["run_id"])
        # A mapped step (a transform shard) works in a folder of its own.
        map_index = getattr(context.get("ti"), "map_index", -1)
        folder = (
            self.task_id if map_index is None or map_index < 0 else f"{self.task_id}-{map_index}"
        )
        return container_task(
            task_id=self.task_id,
            step=step,
            runner=self.runner,
            image=str(self.image).strip() or None,
            gpus=int(self.gpus),
            instance_count=int(self.instance_count) if self.step is Step.TRAIN else 1,
            local_ml_root=str(work / self.dag_id / key / folder),
            deferrable=self.deferrable,
        )

    def _input_data_config(self, channels: Mapping[str, str]) -> dict[str, dict[str, str]]:
        """Pipe input mode for the training channels the algorithm streams; File otherwise."""
        mode = str(self.input_mode).strip() or FILE
        if mode not in INPUT_MODES:
            raise refuse(f"[Input mode] input_mode {mode!r}; allowed: {' or '.join(INPUT_MODES)}")
        if mode == FILE or self.step is not Step.TRAIN:
            return {}
        streamed = get_algorithm(self.algorithm).streamed_channels
        if not streamed:
            raise refuse(
                f"[Input mode] input_mode {PIPE}: {self.algorithm} reads its channels in "
                f"{FILE} mode only"
            )
        return {name: {MODE_KEY: PIPE} for name in channels if name in streamed}

    @property
    def _runner(self) -> StepRunner:
        try:
            return get_runner(str(self.runner))
        except ValueError as e:
            raise refuse(str(e)) from e

    @property
    def _output(self) -> str:
        return str(self.output_uri).rstrip("/")

    def on_kill(self) -> None:
        """Stop the step's process or pod with the task."""
        running = getattr(self, "_running", None)
        if running is not None:
            running.on_kill()

    def execute(self, context: Any) -> dict[str, Any]:
        # The local runner's step process gets this connection's credentials.
        use_aws_connection(self.aws_conn_id)
        self.check_uris(
            {**{f"channel {k!r}": v for k, v in self.channels.items()}, "output_uri": self._output}
        )
        record_run(context, self._output)
        # What an earlier attempt published (model, metrics, failure, summary) must not be
        # taken for this attempt's result, even when this one dies before the step runs.
        remove_prefix(self._output)
        runner = self._runner
        operator = self._running = self.build(context)
        return self._finish(context, lambda: runner.start(operator, context))

    def execute_complete(
        self,
        context: Any,
        event: dict[str, Any],
        *,
        resume_method: str,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Resume after the runner's trigger fired: the runner's operator, built afresh,
        finishes (logs, clean-up) in the method it deferred to; then the step's outputs."""
        use_aws_connection(self.aws_conn_id)  # a new process: the step's outputs are read with it
        runner = self._runner
        operator = self._running = self.build(context)
        return self._finish(
            context, lambda: runner.resume(operator, context, event, resume_method, kwargs)
        )

    def _finish(self, context: Any, run: Callable[[], Any]) -> dict[str, Any]:
        try:
            run()
        except TaskDeferred as deferred:
            # Whatever the runner's operator resumes in, and however often it defers, the
            # task resumes here; the method's name travels with the deferral.
            self.defer(
                trigger=deferred.trigger,
                method_name="execute_complete",
                kwargs={**(deferred.kwargs or {}), "resume_method": deferred.method_name},
                timeout=deferred.timeout,
            )
        except Exception as e:
            raise self._failure(e) from e
        return self._result(context)

    def _failure(self, error: Exception) -> Exception:
        """The error to fail the task with: the step's own reason, no retry for bad input."""
        summary_path = storage_path(f"{self._output}/{SUMMARY}")
        if not summary_path.exists():
            return AirflowException(
                f"{self.step} ended without reporting a result ({error}); it may have been "
                "stopped before it ran (image pull, eviction, out of memory)"
            )
        summary = json.loads(summary_path.read_text())
        reason = summary.get("reason") or str(error)
        if summary.get("exit_code") == EXIT_BAD_INPUT:
            return refuse(f"{self.step} failed: {reason}")
        return AirflowException(f"{self.step} failed: {reason}")

    def _result(self, context: Any) -> dict[str, Any]:
        output = self._output
        result: dict[str, Any] = {"output_uri": output}
        if self.step is Step.TRAIN:
            result["model"] = f"{output}/{MODEL_ARCHIVE}"
        if self.step is Step.TRANSFORM:
            result["predictions"] = f"{output}/{STEP_RESULTS[self.step]}"
        summary_path = storage_path(f"{output}/{SUMMARY}")
        if summary_path.exists():
            summary = json.loads(summary_path.read_text())
            if summary.get("value") is not None:
                result["primary_metric"] = {summary["primary_metric"]: summary["value"]}
        if self.step is not Step.TRANSFORM:
            metrics = json.loads(storage_path(f"{output}/{STEP_RESULTS[self.step]}").read_text())
            # Training's last epoch, or an evaluation's top-level numbers (any algorithm's).
            result["metrics"] = metrics.get("final") or {
                k: v for k, v in metrics.items() if isinstance(v, int | float)
            }
            self.log.info("%s metrics: %s", self.step, result["metrics"])
        # Downstream DAGs scheduled on this task's assets learn where the new outputs are.
        for outlet in self.outlets:
            context["outlet_events"][outlet].extra = result
        return result
