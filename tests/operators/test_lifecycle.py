"""The gate and promote steps: a kept champion is a skip with the reasons in the task log, not a
failure; the backfill rule goes by data intervals as the pipeline's schedule makes them."""

from __future__ import annotations

import contextlib
import json

import pendulum
import pytest
from airflow.sdk.exceptions import AirflowSkipException
from airflow.timetables.base import DataInterval, TimeRestriction

from operators.lifecycle import GateOperator, PromoteOperator
from operators.pipeline import schedule_of
from tasks.contract import CHAMPION_EVALUATION, EVALUATION, GATE_FOLDER, SUMMARY
from tasks.lifecycle.champion import read_pointer


def test_a_kept_champion_is_a_skip_that_leaves_no_failure_on_record(tmp_path, capsys):
    run = tmp_path / "run=1"
    gate = run / GATE_FOLDER
    gate.mkdir(parents=True)
    reasons = ["challenger accuracy 0.5 < champion 0.8: at least +0.0000 is required"]
    (gate / "gate.json").write_text(json.dumps({"promote": False, "reasons": reasons}))
    op = PromoteOperator(
        task_id="promote",
        gate_uri=f"file://{gate}",
        model_uri=f"file://{run}/train/model.tar.gz",
        models_uri=f"file://{tmp_path}/models",
        pipeline="image_classification",
    )
    with pytest.raises(AirflowSkipException, match="the champion stays: challenger accuracy"):
        op.execute({})
    assert not (gate / SUMMARY).exists()  # the report lists no failure for this run
    assert f"the champion stays: {reasons[0]}" in capsys.readouterr().out  # the task log says why


def gate_and_promote(
    root, name: str, interval: DataInterval, accuracy: float, logical_date=None
) -> dict:
    """Run `name`'s gate and promote steps as a DAG run with `interval` would (a scheduled run's
    logical date is its interval's start), its model scoring `accuracy` (the champion, re-scored
    on the same data, 0.8); the gate's decision."""
    run = root / name
    (run / "evaluate").mkdir(parents=True)
    (run / "train").mkdir()
    (run / "train" / "model.tar.gz").write_bytes(name.encode())
    per_class = {"a": {"recall": accuracy}}
    (run / "evaluate" / EVALUATION).write_text(
        json.dumps({"accuracy": accuracy, "per_class": per_class})
    )
    (run / "evaluate" / CHAMPION_EVALUATION).write_text(
        json.dumps({"accuracy": 0.8, "per_class": {"a": {"recall": 0.8}}})
    )
    context = {
        "run_id": name,
        "logical_date": logical_date or interval.start,
        "data_interval_start": interval.start,
        "data_interval_end": interval.end,
    }
    common = {"models_uri": f"file://{root}/models", "pipeline": "image_classification"}
    GateOperator(
        task_id="gate",
        algorithm="image-classification",
        evaluation_uri=f"file://{run}/evaluate",
        output_uri=f"file://{run}/{GATE_FOLDER}",
        **common,
    ).execute(context)
    promote = PromoteOperator(
        task_id="promote",
        gate_uri=f"file://{run}/{GATE_FOLDER}",
        model_uri=f"file://{run}/train/model.tar.gz",
        **common,
    )
    with contextlib.suppress(AirflowSkipException):  # the champion stays
        promote.execute(context)
    return json.loads((run / GATE_FOLDER / "gate.json").read_text())


def test_a_scheduled_run_after_a_manual_promotion_the_same_day_competes_on_its_score(
    tmp_path, monkeypatch
):
    """A daily pipeline: a manual run at 04:52 is promoted; the scheduled runs of that day (the
    latest complete interval, created when the pipeline is unpaused, and the next one) are gated
    on their scores like any run; a backfill of an earlier day is kept out whatever it scores."""
    monkeypatch.setenv("VISION_PIPELINES_IMAGE_CLASSIFICATION_SCHEDULE", "@daily")
    timetable = schedule_of("image_classification")
    day = pendulum.datetime(2026, 12, 6, tz="UTC")
    triggered = day.add(hours=4, minutes=52)
    manual = timetable.infer_manual_data_interval(run_after=triggered)
    restriction = TimeRestriction(earliest=day.subtract(days=30), latest=None, catchup=True)

    def scheduled_after(interval: DataInterval) -> DataInterval:
        return timetable.next_dagrun_info(
            last_automated_data_interval=interval, restriction=restriction
        ).data_interval

    latest = scheduled_after(DataInterval(day.subtract(days=2), day.subtract(days=1)))
    following = scheduled_after(latest)
    backfill = scheduled_after(DataInterval(day.subtract(days=6), day.subtract(days=5)))
    assert latest.end == manual.end < following.end and backfill.end < manual.end

    # With no champion the floor decides, so the champion is this manual run's model.
    assert gate_and_promote(tmp_path, "manual", manual, 0.9, triggered)["promote"]
    champion = read_pointer(f"file://{tmp_path}/models", "image_classification")["champion"]
    assert champion["run_id"] == "manual"
    assert champion["data_interval_end"] == manual.end.isoformat()

    worse = gate_and_promote(tmp_path, "scheduled-latest", latest, 0.7)
    assert not worse["promote"]
    assert worse["reasons"][1:] == [
        "accuracy 0.7000 vs the champion's 0.8000 on the same data: a gain of -0.1000, at least "
        "+0.0000 is required",
        "class 'a': recall drops by 0.1000 (0.8000 -> 0.7000); at most 0.0500",
    ]
    better = gate_and_promote(tmp_path, "scheduled-next", following, 0.95)
    assert better["promote"], better["reasons"]
    assert (
        read_pointer(f"file://{tmp_path}/models", "image_classification")["champion"]["run_id"]
        == "scheduled-next"
    )

    old = gate_and_promote(tmp_path, "backfill", backfill, 0.99)
    assert not old["promote"]
    assert any(r.startswith("a backfill: its data interval ends at") for r in old["reasons"])
