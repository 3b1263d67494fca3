"""The container contract: the ml-root layout, step outputs, hyperparameters as strings, the
failure file and the step summary."""

from __future__ import annotations

import gc
import json
import logging
import os
import sys
import tempfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, NoReturn

from tasks.atomic import atomic_write_text
from tasks.errors import InputError, StepTerminated

DEFAULT_ML_ROOT = "/opt/ml"
EXIT_OK, EXIT_INTERNAL_ERROR, EXIT_BAD_INPUT = 0, 1, 2
EXIT_TERMINATED = 143
"""128 + SIGTERM, as a shell reports a process SIGTERM ended."""

# What the steps write (under model/ and output/, uploaded side by side to the output URI).
MODEL_ARCHIVE = "model.tar.gz"
METRICS = "metrics.json"
EVALUATION = "evaluation.json"
CHAMPION_EVALUATION = "champion_evaluation.json"
"""The champion re-scored on the challenger's evaluation data (the gate compares the two)."""
COMPARISON = "champion_vs_challenger.png"
PREDICTIONS = "predictions.jsonl"
LEARNING_CURVES = "learning_curves.png"
SUMMARY = "summary.json"
FAILURE = "failure"
FAILED_PREFIX = "FAILED: "
"""How a failed job's one-sentence reason starts in its log."""

log = logging.getLogger("vision_pipelines")


class Step(StrEnum):
    """The container steps."""

    TRAIN = "train"
    EVALUATE = "evaluate"
    TRANSFORM = "transform"


STEP_RESULTS = {Step.TRAIN: METRICS, Step.EVALUATE: EVALUATION, Step.TRANSFORM: PREDICTIONS}
"""The main output file of each step."""
STEP_FOLDERS = {Step.TRAIN: "train", Step.EVALUATE: "evaluate", Step.TRANSFORM: "batch_transform"}
"""The folder under a run where each step's task writes."""
GATE_FOLDER = "gate"
DEPLOY_FOLDER = "deploy"
DEPLOY_RECORD = "deploy.json"
INFERENCE_SERVICE = "inferenceservice.yaml"
QUALITY_FOLDER = "quality"
QUALITY = "quality.json"
"""The data-quality step's summary (tasks/quality/validate.py), under <run>/quality/."""
GATE = "gate.json"
"""The gate's verdict, under <run>/gate/."""
TUNING_FOLDER = "tuning"
"""A tuning run's study, trials and tuning.json (tasks/tuning/rounds.py), under <run>/tuning/."""
TUNING_RESULT = "tuning.json"
"""A tuning run's trials and its best trial, under <run>/tuning/."""
MANIFEST_VALIDATION = "manifest_validation.json"
"""Manifest validation's result (GE's vocabulary), beside the lists it checked."""


@dataclass(frozen=True)
class MLRoot:
    """Paths of the managed service's training-container layout under one root folder."""

    root: Path

    @property
    def config_dir(self) -> Path:
        return self.root / "input" / "config"

    @property
    def hyperparameters_path(self) -> Path:
        return self.config_dir / "hyperparameters.json"

    @property
    def input_data_config_path(self) -> Path:
        return self.config_dir / "inputdataconfig.json"

    @property
    def checkpoint_config_path(self) -> Path:
        """Written when the job's checkpoints are kept in storage (`--checkpoint-uri`): as the
        managed service's CheckpointConfig, the checkpoints then outlive the job."""
        return self.config_dir / "checkpointconfig.json"

    @property
    def checkpoints_kept(self) -> bool:
        return self.checkpoint_config_path.exists()

    def channel(self, name: str) -> Path:
        return self.root / "input" / "data" / name

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def model_archive(self) -> Path:
        return self.model_dir / MODEL_ARCHIVE

    @property
    def output_dir(self) -> Path:
        return self.root / "output"

    @property
    def metrics_path(self) -> Path:
        return self.output_dir / METRICS

    @property
    def failure_path(self) -> Path:
        return self.output_dir / FAILURE

    @property
    def summary_path(self) -> Path:
        return self.output_dir / SUMMARY

    @property
    def checkpoints_dir(self) -> Path:
        return self.root / "checkpoints"


def _read_json_object(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise InputError(f"{path}: file not found; the job needs it") from e
    except json.JSONDecodeError as e:
        raise InputError(
            f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})"
        ) from e
    if not isinstance(value, dict):
        raise InputError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value


def read_hyperparameters(ml_root: MLRoot) -> dict[str, str]:
    """hyperparameters.json as strings, the way the managed service sends them."""
    raw = _read_json_object(ml_root.hyperparameters_path)
    values: dict[str, str] = {}
    for name, value in raw.items():
        if isinstance(value, (dict, list)) or value is None:
            raise InputError(
                f"{ml_root.hyperparameters_path}: hyperparameter {name!r} must be a string, "
                f"got {json.dumps(value)}"
            )
        values[name] = value if isinstance(value, str) else json.dumps(value)
    return values


def read_input_data_config(ml_root: MLRoot) -> dict[str, dict]:
    """inputdataconfig.json (channel -> settings); an absent file means no settings."""
    if not ml_root.input_data_config_path.exists():
        return {}
    return _read_json_object(ml_root.input_data_config_path)


def class_names(ml_root: MLRoot, num_classes: int) -> list[str]:
    """Class names from a `classes.json` list in the train channel, else the indices as text."""
    path = ml_root.channel("train") / "classes.json"
    if path.is_file():
        names = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(names, list) and len(names) == num_classes:
            return [str(n) for n in names]
        log.warning("%s does not list %d class names; using indices", path, num_classes)
    return [str(i) for i in range(num_classes)]


def find_model_archive(folder: Path, channel: str = "model") -> Path:
    """The one model.tar.gz a `model` channel holds (a folder, or a link to the file's folder)."""
    if not folder.exists():
        raise InputError(f"channel {channel!r}: {folder} does not exist")
    found = sorted(folder.rglob("*.tar.gz"))
    if len(found) != 1:
        raise InputError(
            f"channel {channel!r}: expected one {MODEL_ARCHIVE} in {folder}, found {len(found)}"
        )
    return found[0]


@dataclass(frozen=True)
class Outcome:
    """How a job ended: its exit code, its result, or the reason it failed."""

    code: int
    result: Any = None
    reason: str | None = None


def attempt(job: Callable[[], Any], failure_path: Path | None) -> Outcome:
    """Run `job`; bad input is exit 2, a stop from outside 143 and anything else exit 1, with
    the reason on file."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        result = job()
    except InputError as e:
        message = str(e)
        code = EXIT_BAD_INPUT
    except Exception as e:  # noqa: BLE001 - the contract reports every failure in output/failure
        if (stop := _stop_behind(e)) is not None:
            message = str(stop)
            code = EXIT_TERMINATED
        else:
            message = f"internal error: {type(e).__name__}: {e}"
            code = EXIT_INTERNAL_ERROR
            traceback.print_exc(file=sys.stderr)
    else:
        return Outcome(EXIT_OK, result)
    if failure_path is not None:
        atomic_write_text(failure_path, message + "\n")
    print(f"{FAILED_PREFIX}{message}", file=sys.stderr, flush=True)
    return Outcome(code, reason=message)


def _stop_behind(error: BaseException) -> StepTerminated | None:
    """The stop (SIGTERM) that `error` was raised while handling, if any: a library may turn the
    stop into an error of its own (a C extension's module init reports any exception as
    "ImportError: initialization failed", and Keras then says a dependency is missing), and the
    step was still stopped from outside, not failed (a tuning trial so stopped runs again)."""
    pending, seen = [error], set()
    while pending:
        current = pending.pop()
        if isinstance(current, StepTerminated):
            return current
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        pending += [current.__cause__, current.__context__]
    return None


def unwritable(ml: MLRoot) -> int:
    """0 when model/ and output/ under the ml-root can be written (made when missing); else
    exit 2 with a sentence on stderr (no failure file: output/ is what cannot be written)."""
    for folder in (ml.model_dir, ml.output_dir):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as e:
            user = f"uid {os.getuid()}, gid {os.getgid()}"
            print(
                f"{FAILED_PREFIX}{folder}: cannot write there ({e.strerror}); the ml-root's "
                f"model/ and output/ must be writable by the user this step runs as ({user}): "
                "for a container, chown the mounted folder to that user (podman: mount it with "
                "`:U`) or run with its owner's --user",
                file=sys.stderr,
                flush=True,
            )
            return EXIT_BAD_INPUT
    return EXIT_OK


def exit_process(code: int) -> NoReturn:
    """sys.exit(code) without the interpreter's last full garbage collections, which walk every
    TensorFlow object for a second or more of a step's wall time when nothing is left to free:
    everything is written and closed by now, and the atexit handlers still run."""
    gc.freeze()
    sys.exit(code)


def run_job(job: Callable[[], Any], failure_path: Path | None) -> int:
    """`attempt(job)`'s exit code (the CLIs' return value)."""
    return attempt(job, failure_path).code


def primary_value(step: Step | str, result: Any, metric: str) -> float | None:
    """The primary metric in a step's result: `validation_<metric>` of training's kept epoch
    (the last unless restore_best_weights), `<metric>` of an evaluation; None when it has none."""
    if not isinstance(result, dict):
        return None
    if step == Step.TRAIN:
        value = result.get("final", {}).get(f"validation_{metric}")
    elif step == Step.EVALUATE:
        value = result.get(metric)
    else:
        value = None
    return float(value) if isinstance(value, (int, float)) else None


def step_summary(
    *,
    step: Step | str,
    algorithm: str | None,
    outcome: Outcome,
    primary_metric: str | None = None,
    higher_is_better: bool = True,
) -> dict:
    """How a step ended (exit code, failure class, reason) and its primary metric: what
    `summary.json` holds, for the operator and the reports (no parsing of messages)."""
    classes = {EXIT_OK: None, EXIT_BAD_INPUT: "bad_input", EXIT_TERMINATED: "terminated"}
    failure = classes.get(outcome.code, "internal")
    return {
        "step": str(step),
        "algorithm": algorithm,
        "status": "succeeded" if outcome.code == EXIT_OK else "failed",
        "exit_code": outcome.code,
        "failure": failure,
        "reason": outcome.reason,
        "primary_metric": primary_metric,
        "higher_is_better": higher_is_better,
        "value": primary_value(step, outcome.result, primary_metric) if primary_metric else None,
    }


def write_summary(path: Path, **summary: Any) -> dict:
    """`output/summary.json` of a container step (see step_summary)."""
    result = step_summary(**summary)
    atomic_write_text(path, json.dumps(result, indent=2) + "\n")
    return result
