"""The promote step when the gate keeps the champion: a skip with the reasons, not a failure."""

from __future__ import annotations

import json

import pytest
from airflow.sdk.exceptions import AirflowSkipException

from operators.lifecycle import PromoteOperator
from tasks.contract import GATE_FOLDER, SUMMARY


def test_a_kept_champion_is_a_skip_that_leaves_no_failure_on_record(tmp_path):
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
