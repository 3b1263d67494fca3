"""The champion/challenger gate (a pure function), the champion pointer, promotion and rollback
(library and CLI)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tasks.errors import InputError
from tasks.lifecycle.champion import (
    champion_model,
    data_fingerprint,
    promote,
    read_pointer,
    rollback,
)
from tasks.lifecycle.gate import GateRules, decide

ROOT = Path(__file__).resolve().parents[2]


def evaluation(accuracy: float, **recalls: float) -> dict:
    return {
        "accuracy": accuracy,
        "class_names": list(recalls),
        "per_class": {name: {"recall": r, "precision": r} for name, r in recalls.items()},
    }


def gate(challenger, champion, rules=None, **dates):
    return decide(
        challenger,
        champion,
        metric="accuracy",
        higher_is_better=True,
        per_class_metric="recall",
        rules=rules or GateRules(),
        **dates,
    )


def test_a_better_challenger_is_promoted_with_its_reasons():
    decision = gate(evaluation(0.9, cat=0.9, dog=0.9), evaluation(0.8, cat=0.85, dog=0.75))
    assert decision.promote
    assert "a gain of +0.1000" in " ".join(decision.reasons)
    assert decision.per_class == {
        "cat": {"challenger": 0.9, "champion": 0.85},
        "dog": {"challenger": 0.9, "champion": 0.75},
    }


def test_a_worse_challenger_keeps_the_champion():
    decision = gate(evaluation(0.7, cat=0.7, dog=0.7), evaluation(0.8, cat=0.8, dog=0.8))
    assert not decision.promote
    assert any("a gain of -0.1000, at least +0.0000 is required" in r for r in decision.reasons)


def test_no_class_may_drop_more_than_allowed_even_when_the_mean_improves():
    decision = gate(
        evaluation(0.9, cat=1.0, dog=0.6),
        evaluation(0.8, cat=0.7, dog=0.9),
        GateRules(max_class_drop=0.1),
    )
    assert not decision.promote
    assert any(
        "class 'dog': recall drops by 0.3000 (0.9000 -> 0.6000); at most 0.1000" in r
        for r in decision.reasons
    )


def test_minimum_improvement_and_the_floor_of_a_first_model():
    assert not gate(
        evaluation(0.81, a=0.81), evaluation(0.8, a=0.8), GateRules(min_improvement=0.05)
    ).promote
    first = gate(evaluation(0.4, a=0.4), None, GateRules(floor=0.5))
    assert not first.promote and first.champion is None
    assert "accuracy 0.4000 misses the floor: at least 0.5000" in first.reasons
    assert gate(evaluation(0.6, a=0.6), None, GateRules(floor=0.5)).promote


def test_a_backfill_never_replaces_a_newer_champion():
    decision = gate(
        evaluation(0.99, a=0.99),
        evaluation(0.5, a=0.5),
        challenger_data_end="2026-01-02T00:00:00+00:00",
        champion_data_end="2026-02-01T00:00:00+01:00",
    )
    assert not decision.promote
    assert any("a backfill: its data interval ends at" in r for r in decision.reasons)
    same_interval = gate(
        evaluation(0.99, a=0.99),
        evaluation(0.5, a=0.5),
        challenger_data_end="2026-02-01T00:00:00+01:00",
        champion_data_end="2026-01-31T23:00:00+00:00",
    )
    assert same_interval.promote, same_interval.reasons


def test_lower_is_better_metrics():
    decision = decide(
        {"loss": 0.2},
        {"loss": 0.3},
        metric="loss",
        higher_is_better=False,
        per_class_metric="recall",
        rules=GateRules(),
    )
    assert decision.promote


def _model(tmp_path: Path, name: str) -> str:
    path = tmp_path / "runs" / name / "model.tar.gz"
    path.parent.mkdir(parents=True)
    path.write_bytes(name.encode())
    return f"file://{path}"


def promote_run(models: str, model: str, run: str, date: str | None = None) -> dict:
    """Promote `model` as run `run` of image_classification (no gate)."""
    return promote(
        models,
        "image_classification",
        model_uri=model,
        run_key=run,
        metrics={"accuracy": 0.9},
        run_id=run,
        data_interval_end=date,
        fingerprint="sha256:x",
    )


def test_promotion_copies_the_model_and_keeps_the_history(tmp_path):
    models = f"file://{tmp_path}/models"
    assert champion_model(models, "image_classification") == ""
    first = promote_run(models, _model(tmp_path, "a"), "a", "2026-01-01")
    second = promote_run(models, _model(tmp_path, "b"), "b", "2026-01-02")
    assert second["model_uri"] == f"{models}/image_classification/models/b/model.tar.gz"
    assert Path(second["model_uri"].removeprefix("file://")).read_bytes() == b"b"
    pointer = read_pointer(models, "image_classification")
    assert pointer["champion"] == second
    assert [e["run_id"] for e in pointer["history"]] == ["a", "b"]
    assert champion_model(models, "image_classification") == second["model_uri"]
    assert first["model_uri"] != second["model_uri"]
    assert not list((tmp_path / "models").rglob(".*tmp*")), "no temporary files left"


def test_rollback_restores_an_earlier_champion_by_cli_and_library(tmp_path):
    models = f"file://{tmp_path}/models"
    for run in ("a", "b", "c"):
        promote_run(models, _model(tmp_path, run), run, f"2026-01-0{ord(run) - 96}")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tasks.lifecycle",
            "rollback",
            "--models-uri",
            models,
            "--pipeline",
            "image_classification",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert "champion of image_classification is now run b" in done.stdout
    pointer = read_pointer(models, "image_classification")
    assert pointer["champion"]["run_id"] == "b" and pointer["champion"]["action"] == "rollback"
    assert rollback(models, "image_classification", "a")["run_id"] == "a"
    with pytest.raises(
        InputError, match="no earlier champion of run 'zzz'.*promoted runs: a, b, c"
    ):
        rollback(models, "image_classification", "zzz")
    shown = subprocess.run(
        [
            sys.executable,
            "-m",
            "tasks.lifecycle",
            "show",
            "--models-uri",
            models,
            "--pipeline",
            "image_classification",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    assert json.loads(shown.stdout)["champion"]["run_id"] == "a"


def test_a_broken_pointer_is_named(tmp_path):
    (tmp_path / "image_classification").mkdir()
    (tmp_path / "image_classification" / "champion.json").write_text("[1]")
    with pytest.raises(InputError, match="champion.json: not a champion pointer"):
        read_pointer(f"file://{tmp_path}", "image_classification")


def test_the_data_fingerprint_follows_the_lists(tmp_path):
    lst = tmp_path / "train.lst"
    lst.write_text("0\t0\ta.jpg\n")
    before = data_fingerprint([f"file://{lst}"])
    assert before == data_fingerprint([f"file://{lst}"])
    lst.write_text("0\t1\ta.jpg\n")
    assert data_fingerprint([f"file://{lst}"]) != before


def test_a_rollback_racing_a_promotion_loses_neither(tmp_path, monkeypatch):
    """Hardening item 4: promote and rollback read champion.json and wrote it back whole; a
    rollback reported "champion is again r1" while the final champion was r3 and its entry was
    gone. Now each change is a compare-and-swap: both entries stay, in the order they landed."""
    import threading
    import time

    import tasks.lifecycle.champion as champion

    models = f"file://{tmp_path}/models"
    for run in ("r1", "r2"):
        promote_run(models, _model(tmp_path, run), run, "2026-01-01")
    real_upload = champion.upload

    def slow_upload(local, uri):  # widen the window between reading and writing the pointer
        if uri.endswith("champion.json"):
            time.sleep(0.3)
        return real_upload(local, uri)

    monkeypatch.setattr(champion, "upload", slow_upload)
    r3 = _model(tmp_path, "r3")
    done = {}
    threads = [
        threading.Thread(
            target=lambda: done.update(rollback=rollback(models, "image_classification", "r1"))
        ),
        threading.Thread(target=lambda: done.update(promote=promote_run(models, r3, "r3", "x"))),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    pointer = read_pointer(models, "image_classification")
    actions = [(e["run_id"], e["action"]) for e in pointer["history"]]
    assert actions[:2] == [("r1", "promote"), ("r2", "promote")]
    assert sorted(actions[2:]) == [("r1", "rollback"), ("r3", "promote")]
    assert pointer["champion"] == pointer["history"][-1]
    assert done["rollback"] in pointer["history"] and done["promote"] in pointer["history"]


def _gated(models: str, model: str, run: str, against: str | None) -> dict:
    return promote(
        models,
        "image_classification",
        model_uri=model,
        run_key=run,
        metrics={},
        run_id=run,
        data_interval_end=None,
        fingerprint="",
        gated=True,
        gated_against=against,
    )


def test_a_promotion_gated_against_another_champion_is_refused(tmp_path):
    """Hardening item 4: the gate's verdict was not re-checked at promote time, so two runs that
    both beat the same champion replaced each other without being compared."""
    from tasks.lifecycle.champion import PointerConflictError

    models = f"file://{tmp_path}/models"
    first = promote_run(models, _model(tmp_path, "a"), "a", "2026-01-01")
    # Runs b and c were both gated against champion a; b is promoted first.
    b = _gated(models, _model(tmp_path, "b"), "b", first["model_uri"])
    with pytest.raises(PointerConflictError, match="the champion changed after the gate") as e:
        _gated(models, _model(tmp_path, "c"), "c", first["model_uri"])
    assert "(run b)" in str(e.value)
    pointer = read_pointer(models, "image_classification")
    assert pointer["champion"] == b and [h["run_id"] for h in pointer["history"]] == ["a", "b"]


def test_a_second_promotion_of_the_same_run_key_keeps_the_archived_champion(tmp_path):
    """Hardening, third pass: the second promotion overwrote models/<run key>/model.tar.gz, so a
    rollback to the first one served the second model."""
    models = f"file://{tmp_path}/models"
    first = promote_run(models, _model(tmp_path, "a"), "key")
    (tmp_path / "runs" / "b").mkdir(parents=True)
    (tmp_path / "runs" / "b" / "model.tar.gz").write_bytes(b"b")
    second = promote_run(models, f"file://{tmp_path}/runs/b/model.tar.gz", "key")
    assert first["model_uri"] != second["model_uri"]
    assert Path(first["model_uri"].removeprefix("file://")).read_bytes() == b"a"
    assert Path(second["model_uri"].removeprefix("file://")).read_bytes() == b"b"


def test_a_champion_pointer_cannot_send_a_step_outside_the_allowed_locations(tmp_path, monkeypatch):
    """Hardening, third pass: the data-quality step's champion profile and the deploy step's
    champion model were read from whatever champion.json named."""
    models = tmp_path / "models"
    pointer = models / "image_classification" / "champion.json"
    pointer.parent.mkdir(parents=True)
    entry = {"model_uri": "file:///etc/passwd", "profile_uri": None, "run_id": "x"}
    pointer.write_text(json.dumps({"champion": entry, "history": [entry]}))
    monkeypatch.setenv("VISION_PIPELINES_ALLOWED_URIS", f"file://{tmp_path}")
    with pytest.raises(InputError, match="champion's model_uri 'file:///etc/passwd' is outside"):
        read_pointer(f"file://{models}", "image_classification")
