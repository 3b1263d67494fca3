"""A tuning run in storage: its study's journal, the units of each round as arguments of the
mapped train step, their results reported back, and at the end `tuning.json` and the best
trial's model where a training run's model lies.

Under the tuning run's folder (`<run>/tuning/`): `study.journal` (Optuna's journal; every task
copies it in, works on it, and writes it back whole: rounds run one at a time), and one folder
per unit, `trials/<trial>/epochs-<e>/` (the train step's outputs after epoch e), and the
trial's checkpoints, `trials/<trial>/checkpoints/` (the train step's checkpoint URI): a continued
unit resumes from them (weights, optimizer state, epoch), so no epoch is trained twice, on any
runner.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import fsspec

from tasks.contract import METRICS, SUMMARY, TUNING_RESULT
from tasks.errors import InputError
from tasks.staging import remove_prefix, upload
from tasks.tuning.plot import objective_plot
from tasks.tuning.study import Study, TuningJob, Unit, objective_values

STUDY = "study.journal"
OBJECTIVE_PLOT = "objective.png"


def unit_uri(tuning_uri: str, number: int, epochs: int) -> str:
    """Where trial `number`'s unit that trains until epoch `epochs` writes."""
    return f"{tuning_uri.rstrip('/')}/trials/{number:03d}/epochs-{epochs}"


def _read_json(uri: str) -> dict[str, Any] | None:
    fs, path = fsspec.core.url_to_fs(uri)
    try:
        with fs.open(path, "rb") as f:
            return json.loads(f.read())
    except FileNotFoundError:
        return None


@contextmanager
def stored_study(tuning_uri: str, job: TuningJob) -> Iterator[Study]:
    """The run's study: its journal copied in from storage, written back when the work is done
    (not when it fails: a task that fails leaves the journal as it found it)."""
    uri = f"{tuning_uri.rstrip('/')}/{STUDY}"
    fs, path = fsspec.core.url_to_fs(uri)
    with tempfile.TemporaryDirectory(prefix="tuning-") as tmp:
        local = Path(tmp) / STUDY
        if fs.exists(path):
            fs.get_file(path, str(local))
        study = Study(local, job)
        yield study
        upload(local, uri)


def start(study: Study, warm_start_uri: str | None) -> int:
    """A new study's warm start from an earlier tuning run's folder (its study.journal); the
    trials it added (0 when there is none, or the study had begun already)."""
    if not warm_start_uri or study.trials():
        return 0
    earlier = f"{warm_start_uri.rstrip('/')}/{STUDY}"
    fs, path = fsspec.core.url_to_fs(earlier)
    if not fs.exists(path):
        raise InputError(f"warm start {warm_start_uri}: holds no {STUDY} of a tuning run")
    with tempfile.TemporaryDirectory(prefix="warm-start-") as tmp:
        local = Path(tmp) / STUDY
        fs.get_file(path, str(local))
        return study.warm_start(local)


def report_round(study: Study, tuning_uri: str) -> list[str]:
    """Report every unit handed out that has finished (its summary.json): its objective per
    epoch, or its failure (the trial ends); a unit with no summary, or one stopped from outside
    (its task killed), stays handed out and runs again. One line per unit, for the task log."""
    lines = []
    for unit in study.handed_out():
        uri = unit_uri(tuning_uri, unit.number, unit.epochs)
        summary = _read_json(f"{uri}/{SUMMARY}")
        if summary is None:
            continue
        if summary.get("failure") == "terminated":  # stopped from outside: it runs again
            lines.append(f"trial {unit.number}: stopped before its end; it runs again")
            continue
        if summary.get("exit_code") != 0:
            study.fail(unit.number)
            lines.append(f"trial {unit.number}: failed ({summary.get('reason', 'see its log')})")
            continue
        metrics = _read_json(f"{uri}/{METRICS}") or {}
        # Every epoch since the trial began: the history is kept with its checkpoints.
        values = objective_values(metrics, study.job.objective)
        state = study.report(unit.number, values)
        objective = study.job.objective.name
        lines.append(
            f"trial {unit.number}: {objective} {values[-1]:.4f} after epoch {unit.epochs}: {state}"
        )
    return lines


def checkpoint_uri(tuning_uri: str, number: int) -> str:
    """Where trial `number` keeps its checkpoints between its units."""
    return f"{tuning_uri.rstrip('/')}/trials/{number:03d}/checkpoints"


def round_arguments(
    units: list[Unit],
    tuning_uri: str,
    *,
    channels: Mapping[str, str],
    hyperparameters: Mapping[str, str],
) -> list[dict[str, Any]]:
    """The mapped train step's arguments of one round: the run's channels and fixed
    hyperparameters with the trial's own, trained until the unit's epoch; a continued unit
    resumes from the trial's checkpoints after the epochs it trained."""
    return [
        {
            "channels": dict(channels),
            "hyperparameters": {
                **hyperparameters,
                **unit.hyperparameters,
                "epochs": str(unit.epochs),
            },
            "output_uri": unit_uri(tuning_uri, unit.number, unit.epochs),
            "checkpoint_uri": checkpoint_uri(tuning_uri, unit.number),
        }
        for unit in units
    ]


def _seconds(tuning_uri: str, number: int, epochs: list[int]) -> float:
    """A trial's training time, all its units together."""
    total = 0.0
    for e in epochs:
        metrics = _read_json(f"{unit_uri(tuning_uri, number, e)}/{METRICS}") or {}
        total += float(metrics.get("training_seconds") or 0.0)
    return round(total, 1)


def summary(study: Study, tuning_uri: str) -> dict[str, Any]:
    """tuning.json: the job, every trial (hyperparameters, objective, epochs, stopped early,
    seconds) and the best trial, with its hyperparameters as the training form takes them."""
    job = study.job
    trials = study.trials()
    for row in trials:
        reached = [r for r in job.rungs if r <= row["epochs"]]
        row["seconds"] = _seconds(tuning_uri, row["number"], reached)
        row["objective_per_epoch"] = study.reported(row["number"])
    best = study.best()
    return {
        "objective": {"name": job.objective.name, "maximize": job.objective.maximize},
        "strategy": job.strategy,
        "early_stopping": job.early_stopping,
        "max_trials": job.max_trials,
        "max_parallel_trials": job.max_parallel_trials,
        "epochs": job.max_epochs,
        "search_space": {name: r.as_json() for name, r in job.space.items()},
        "trials": trials,
        "best": best,
        "best_hyperparameters": dict(best["hyperparameters"]) if best else None,
    }


def finish(study: Study, tuning_uri: str, train_uri: str) -> dict[str, Any]:
    """The tuning run's result: tuning.json (and the objective's plot) under `tuning_uri`, and
    the best trial's last unit copied to `train_uri`, where a training run's model and metrics
    lie (the gate, promotion and transform that follow read them there)."""
    if not study.finished:
        raise InputError("the tuning run's rounds ended before its trials: clear its rounds")
    result = summary(study, tuning_uri)
    best = result["best"]
    if best is None:
        states = sorted({row["state"] for row in result["trials"]})
        raise InputError(
            "no trial finished (trials ended " + ", ".join(states or ["never started"]) + "): "
            "see the failed trials' logs under trials/"
        )
    source = unit_uri(tuning_uri, best["number"], best["epochs"])
    fs, path = fsspec.core.url_to_fs(source)
    remove_prefix(train_uri)
    with tempfile.TemporaryDirectory(prefix="best-trial-") as tmp:
        fs.get(path.rstrip("/") + "/", tmp, recursive=True)
        files = sorted(p for p in Path(tmp).rglob("*") if p.is_file())
        files.sort(key=lambda p: p.name == SUMMARY)  # the completion marker last
        for file in files:
            upload(file, f"{train_uri.rstrip('/')}/{file.relative_to(tmp).as_posix()}")
        report = Path(tmp) / TUNING_RESULT
        report.write_text(json.dumps(result, indent=2) + "\n")
        upload(report, f"{tuning_uri.rstrip('/')}/{TUNING_RESULT}")
        plot = Path(tmp) / OBJECTIVE_PLOT
        objective_plot(result, plot)
        upload(plot, f"{tuning_uri.rstrip('/')}/{OBJECTIVE_PLOT}")
    return result
