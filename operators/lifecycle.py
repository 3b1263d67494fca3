"""The gate, promotion and deploy steps of a pipeline (thin: the rules and the pointer live in
tasks/lifecycle/, the serving layout in tasks/serving/), and the template macro that names a
pipeline's champion model."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import yaml
from airflow.sdk.exceptions import AirflowSkipException

from operators.deployers import get_deployer
from operators.deployers.base import Deployment
from operators.paths import run_key
from operators.run_record import RunStepOperator, pipeline_step
from operators.storage import read_text, write_text
from tasks.algorithms import get_algorithm
from tasks.contract import (
    CHAMPION_EVALUATION,
    COMPARISON,
    DEPLOY_RECORD,
    EVALUATION,
    GATE,
    INFERENCE_SERVICE,
    QUALITY,
)
from tasks.lifecycle.champion import (
    champion_model,
    data_fingerprint,
    promote,
    read_pointer,
    rollback,
)
from tasks.lifecycle.gate import Decision, GateRules, decide
from tasks.serving.layout import export_version, serving_base

__all__ = [
    "DeployOperator",
    "GateOperator",
    "PromoteOperator",
    "RollbackOperator",
    "champion_model",
]


def _json_or_none(uri: str) -> dict | None:
    try:
        return json.loads(read_text(uri))
    except FileNotFoundError:
        return None


class GateOperator(RunStepOperator):
    """Decides whether the run's model (the challenger) replaces the pipeline's champion, from
    the evaluate step's results (the champion re-scored on the same data); writes `gate.json`
    and logs every reason. Not promoting is a decision, not a failure.

    :param algorithm: the pipeline's algorithm (its primary and per-class metrics).
    :param evaluation_uri: the evaluate step's output folder (templated).
    :param models_uri: where champion pointers live (templated).
    :param pipeline: the pipeline (DAG) the champion belongs to (templated).
    :param output_uri: folder for gate.json (templated).
    :param min_improvement, max_class_drop, floor, no_promotion_on_drift: the rules
        (templated; GateRules).
    :param quality_uri: the data-quality step's folder, whose failed drift expectations the
        gate reports (and obeys with no_promotion_on_drift) (templated).
    """

    uri_fields = ("evaluation_uri", "models_uri", "output_uri", "quality_uri")
    template_fields: Sequence[str] = (
        "evaluation_uri",
        "models_uri",
        "pipeline",
        "output_uri",
        "min_improvement",
        "max_class_drop",
        "floor",
        "no_promotion_on_drift",
        "quality_uri",
    )

    def __init__(
        self,
        *,
        algorithm: str,
        evaluation_uri: str,
        models_uri: str,
        pipeline: str,
        output_uri: str,
        min_improvement: float | str = 0.0,
        max_class_drop: float | str = 0.05,
        floor: float | str = 0.0,
        no_promotion_on_drift: bool | str = False,
        quality_uri: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.algorithm, self.evaluation_uri, self.models_uri = algorithm, evaluation_uri, models_uri
        self.no_promotion_on_drift, self.quality_uri = no_promotion_on_drift, quality_uri
        self.pipeline, self.output_uri = pipeline, output_uri
        self.min_improvement, self.max_class_drop, self.floor = (
            min_improvement,
            max_class_drop,
            floor,
        )

    @pipeline_step
    def execute(self, context: Any) -> dict[str, Any]:
        spec = get_algorithm(self.algorithm)
        evaluation = self.evaluation_uri.rstrip("/")
        challenger = json.loads(read_text(f"{evaluation}/{EVALUATION}"))
        rescored = _json_or_none(f"{evaluation}/{CHAMPION_EVALUATION}")
        if rescored and "error" in rescored:
            self.log.info("champion not compared: %s", rescored["error"])
            rescored = None
        champion = read_pointer(self.models_uri, self.pipeline)["champion"]
        quality = (
            _json_or_none(f"{self.quality_uri.rstrip('/')}/{QUALITY}") if self.quality_uri else None
        )
        data_end = context.get("data_interval_end")
        decision: Decision = decide(
            challenger,
            rescored if champion else None,
            metric=spec.primary_metric,
            higher_is_better=spec.higher_is_better,
            per_class_metric=spec.per_class_metric,
            rules=GateRules(
                min_improvement=float(self.min_improvement),
                max_class_drop=float(self.max_class_drop),
                floor=float(self.floor),
                no_promotion_on_drift=str(self.no_promotion_on_drift).lower() == "true",
            ),
            drift=(quality or {}).get("drift"),
            challenger_data_end=data_end.isoformat() if data_end else None,
            champion_data_end=champion.get("data_interval_end") if champion else None,
        )
        result = {
            **decision.to_dict(),
            "champion_run_id": champion["run_id"] if champion else None,
            "champion_model_uri": champion["model_uri"] if champion else None,
            "comparison_png": COMPARISON if rescored and champion else None,
        }
        write_text(f"{self.output_uri.rstrip('/')}/{GATE}", json.dumps(result, indent=2) + "\n")
        verdict = "PROMOTE" if decision.promote else "KEEP THE CHAMPION"
        self.log.info("gate: %s", verdict)
        for reason in decision.reasons:
            self.log.info("gate: %s", reason)
        return result


class PromoteOperator(RunStepOperator):
    """Makes the run's model the pipeline's champion when the gate said so (else skipped, with
    the gate's reasons); its asset event carries the champion's model URI.

    :param gate_uri: the gate's output folder (templated).
    :param model_uri: the run's model.tar.gz (templated).
    :param models_uri: where champion pointers and promoted models live (templated).
    :param pipeline: the pipeline (DAG) (templated).
    :param data_uris: files that define the run's data, for its fingerprint (templated).
    :param profile_uri: the run's data profile, kept with the champion for the drift checks
        of later runs (templated).
    """

    uri_fields = ("gate_uri", "model_uri", "models_uri", "output_uri", "profile_uri")
    template_fields: Sequence[str] = (
        "gate_uri",
        "model_uri",
        "models_uri",
        "pipeline",
        "data_uris",
        "output_uri",
        "profile_uri",
    )

    def __init__(
        self,
        *,
        gate_uri: str,
        model_uri: str,
        models_uri: str,
        pipeline: str,
        data_uris: Sequence[str] = (),
        profile_uri: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.gate_uri, self.model_uri, self.models_uri = gate_uri, model_uri, models_uri
        self.profile_uri = profile_uri
        self.pipeline, self.data_uris = pipeline, list(data_uris)
        self.output_uri = gate_uri

    @pipeline_step
    def execute(self, context: Any) -> dict[str, Any]:
        gate = json.loads(read_text(f"{self.gate_uri.rstrip('/')}/{GATE}"))
        if not gate["promote"]:
            for reason in gate["reasons"]:  # the skip's own message is not in the task log
                self.log.info("the champion stays: %s", reason)
            raise AirflowSkipException("the champion stays: " + "; ".join(gate["reasons"]))
        logical_date = context.get("logical_date")
        entry = promote(
            self.models_uri,
            self.pipeline,
            model_uri=self.model_uri,
            run_key=run_key(logical_date, context["run_id"]),
            metrics={gate["metric"]: gate["challenger"]},
            run_id=context["run_id"],
            data_interval_end=(
                context["data_interval_end"].isoformat()
                if context.get("data_interval_end")
                else None
            ),
            fingerprint=data_fingerprint(self.data_uris),
            gated=True,
            gated_against=gate.get("champion_model_uri"),
            profile_uri=self.profile_uri or None,
        )
        self.log.info("champion of %s is now %s", self.pipeline, entry["model_uri"])
        for outlet in self.outlets:
            context["outlet_events"][outlet].extra = entry
        return entry


class RollbackOperator(RunStepOperator):
    """Makes an earlier champion of a pipeline the champion again (`python -m tasks.lifecycle
    rollback` as a task); its asset event carries the restored model's URI.

    :param models_uri: where champion pointers live (templated).
    :param pipeline: the pipeline (DAG) (templated).
    :param to_run_id: the run whose champion to restore; empty: the previous one (templated).
    """

    uri_fields = ("models_uri",)
    template_fields: Sequence[str] = ("models_uri", "pipeline", "to_run_id")

    def __init__(
        self, *, models_uri: str, pipeline: str, to_run_id: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.models_uri, self.pipeline, self.to_run_id = models_uri, pipeline, to_run_id
        self.output_uri = models_uri

    @pipeline_step
    def execute(self, context: Any) -> dict[str, Any]:
        entry = rollback(self.models_uri, self.pipeline, str(self.to_run_id or "").strip() or None)
        self.log.info(
            "champion of %s is again run %s: %s", self.pipeline, entry["run_id"], entry["model_uri"]
        )
        for outlet in self.outlets:
            context["outlet_events"][outlet].extra = entry
        return entry


class DeployOperator(RunStepOperator):
    """Serves the pipeline's champion: its SavedModel becomes the next version under
    `<models_uri>/serving/<pipeline>/` (the layout TensorFlow Serving and KServe load), then the
    deployer of the run's runner serves it (operators/deployers; kubernetes: a KServe
    InferenceService, also written as `inferenceservice.yaml`; local: the command that serves
    it here, in the log). Writes `deploy.json`. Skipped while the pipeline has no champion.

    :param algorithm: the pipeline's algorithm (the environment that serves it).
    :param models_uri: where champion pointers live (templated).
    :param pipeline: the pipeline (DAG) (templated).
    :param runner: where the pipeline's steps run (templated).
    :param output_uri: folder for deploy.json and inferenceservice.yaml (templated).
    """

    uri_fields = ("models_uri", "output_uri")
    template_fields: Sequence[str] = ("models_uri", "pipeline", "runner", "output_uri")

    def __init__(
        self,
        *,
        algorithm: str,
        models_uri: str,
        pipeline: str,
        runner: str,
        output_uri: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.algorithm, self.models_uri, self.pipeline = algorithm, models_uri, pipeline
        self.runner, self.output_uri = runner, output_uri

    @pipeline_step
    def execute(self, context: Any) -> dict[str, Any]:
        pointer = read_pointer(self.models_uri, self.pipeline)
        champion = pointer["champion"]
        if champion is None:
            raise AirflowSkipException(f"{self.pipeline} has no champion yet: nothing to serve")
        # One version per promotion or rollback: a rerun rewrites the same one.
        deployment = Deployment(
            pipeline=self.pipeline,
            model_uri=champion["model_uri"],
            run_id=champion["run_id"],
            version=len(pointer["history"]),
            model_base_path=serving_base(self.models_uri, self.pipeline),
            environment=get_algorithm(self.algorithm).environment,
        )
        exported = export_version(
            deployment.model_uri, deployment.model_base_path, deployment.version
        )
        self.log.info("champion of run %s exported as %s", deployment.run_id, exported)
        served = get_deployer(self.runner).deploy(deployment, self.log)
        output = self.output_uri.rstrip("/")
        if resource := served.pop("inference_service", None):
            write_text(f"{output}/{INFERENCE_SERVICE}", yaml.safe_dump(resource, sort_keys=False))
        record = {
            "pipeline": self.pipeline,
            "runner": self.runner,
            "run_id": deployment.run_id,
            "model_uri": deployment.model_uri,
            "version": deployment.version,
            "model_base_path": deployment.model_base_path,
            **served,
        }
        write_text(f"{output}/{DEPLOY_RECORD}", json.dumps(record, indent=2) + "\n")
        return record
