from __future__ import annotations

import pytest

from operators.links import browsable_url


def test_s3_uris_open_in_the_console():
    assert browsable_url("s3://my-bucket/runs/run=1/train") == (
        "https://s3.console.aws.amazon.com/s3/buckets/my-bucket?prefix=runs/run%3D1/train/"
    )


def test_local_folders_have_no_storage_link_but_a_report_link():
    """A file:// link is dropped by the UI: local runs link to their report page instead."""
    from operators.links import report_url

    assert browsable_url("file:///data/runs/run=1/train") == ""
    assert report_url("file:///data/runs/image_classification/run=1/train") == (
        "/vision-pipelines/image_classification/run=1/"
    )
    assert report_url("s3://b/out/p/run=manual__x/evaluate") == "/vision-pipelines/p/run=manual__x/"
    assert report_url("file:///data/elsewhere") == ""


def test_a_disallowed_location_in_the_form_is_refused_before_run_json_is_written(
    tmp_path, monkeypatch
):
    """Hardening item 8: run.json (whose models_uri the report pages read on the API server)
    was written before the form's locations were checked."""
    from operators.refusals import RunRefused
    from operators.run_record import record_run

    monkeypatch.setenv("VISION_PIPELINES_ALLOWED_URIS", f"file://{tmp_path}/ok")
    run = tmp_path / "ok" / "runs" / "p" / "run=1"
    context = {
        "run_id": "manual__1",
        "params": {"output_uri": f"file://{tmp_path}/ok/runs/p", "models_uri": "file:///etc"},
    }
    with pytest.raises(RunRefused, match="models_uri 'file:///etc' is outside"):
        record_run(context, f"file://{run}/train")
    assert not (run / "run.json").exists()
    context["params"]["models_uri"] = f"file://{tmp_path}/ok/models"
    record_run(context, f"file://{run}/train")
    assert (run / "run.json").is_file()


def test_a_run_folder_belongs_to_the_run_that_created_it(tmp_path):
    """Hardening, third pass: a user who may trigger only DAG A pointed A's output location at
    DAG B's and chose B's logical date: A's run rewrote B's run.json (B's report then opened for
    A's readers and closed for B's). Now the step is refused before it writes anything; a
    rerun of the same interval by B itself still replaces it."""
    from types import SimpleNamespace

    from operators.refusals import RunRefused
    from operators.run_record import record_run
    from tasks.run_report import find_run

    runs = tmp_path / "runs"
    run = runs / "b" / "run=20260101T000000"

    def context(dag_id: str, run_id: str) -> dict:
        return {"run_id": run_id, "dag": SimpleNamespace(dag_id=dag_id), "params": {}}

    record_run(context("b", "scheduled__1"), f"file://{run}/train")
    owned = (run / "run.json").read_text()
    record_run(context("b", "scheduled__1"), f"file://{run}/evaluate")  # B's next step
    for dag_id in ("a", "c"):
        with pytest.raises(RunRefused, match="already belongs to DAG 'b' .run 'scheduled__1'"):
            record_run(context(dag_id, "scheduled__1"), f"file://{run}/train")
    assert (run / "run.json").read_text() == owned
    assert find_run([runs], "b", run.name).owner == "b"
    record_run(context("b", "backfill__2"), f"file://{run}/train")  # B reruns that interval
    assert find_run([runs], "b", run.name).record["run_id"] == "backfill__2"
