"""`python -m tasks.job`: staging, train -> evaluate -> transform, uploads, failure reporting."""

from __future__ import annotations

import json
import math

import pytest

from tasks.data.synthetic import make_shapes_dataset
from tasks.job import main

pytestmark = pytest.mark.integration


def test_train_evaluate_transform_through_object_storage_uris(tmp_path, make_ml_root, tiny):
    images = make_shapes_dataset(tmp_path / "images", per_class=6, size=16)
    source = make_ml_root(tmp_path / "prepared", images, tiny)
    hyperparameters = json.loads(source.hyperparameters_path.read_text())
    out = tmp_path / "out"
    channels = [
        f"train=file://{source.channel('train')}",
        f"validation=file://{source.channel('validation')}",
    ]
    args = [
        "train",
        "--ml-root",
        str(tmp_path / "ml-train"),
        "--output-uri",
        f"file://{out}/train",
        "--hyperparameters",
        json.dumps(hyperparameters),
    ]
    for channel in channels:
        args += ["--channel", channel]
    assert main(args) == 0
    assert (out / "train" / "model.tar.gz").is_file()
    assert (out / "train" / "metrics.json").is_file()

    model = f"model=file://{out}/train/model.tar.gz"
    assert (
        main(
            [
                "evaluate",
                "--ml-root",
                str(tmp_path / "ml-eval"),
                "--channel",
                model,
                "--channel",
                channels[1],
                "--output-uri",
                f"file://{out}/evaluate",
            ]
        )
        == 0
    )
    evaluation = json.loads((out / "evaluate" / "evaluation.json").read_text())
    assert evaluation["samples"] == 6 and 0.0 <= evaluation["accuracy"] <= 1.0
    assert (out / "evaluate" / "evaluation_confusion_matrix.png").is_file()
    summary = json.loads((out / "evaluate" / "summary.json").read_text())
    assert summary["status"] == "succeeded" and summary["primary_metric"] == "accuracy"
    assert summary["value"] == evaluation["accuracy"]
    trained = json.loads((out / "train" / "summary.json").read_text())
    final = json.loads((out / "train" / "metrics.json").read_text())["final"]
    assert trained["value"] == final["validation_accuracy"]

    (images / "nested").mkdir()
    (images / "nested" / "a.PNG").write_bytes((images / "circle" / "circle_0000.jpg").read_bytes())
    assert (
        main(
            [
                "transform",
                "--ml-root",
                str(tmp_path / "ml-tx"),
                "--channel",
                model,
                "--channel",
                f"data=file://{images}",
                "--output-uri",
                f"file://{out}/tx",
            ]
        )
        == 0
    )
    rows = [
        json.loads(line) for line in (out / "tx" / "predictions.jsonl").read_text().splitlines()
    ]
    expected = sorted(
        p.relative_to(images).as_posix()
        for p in images.rglob("*")
        if p.suffix.lower() in (".jpg", ".png")
    )
    assert [r["source-ref"] for r in rows] == expected
    assert all(math.isclose(sum(r["prediction"]), 1.0, abs_tol=1e-4) for r in rows)


def _job(tmp_path, step: str, *channels: str, algorithm: str = "image-classification") -> int:
    """`python -m tasks.job STEP` with outputs to `tmp_path/out`."""
    args = [step, "--algorithm", algorithm, "--ml-root", str(tmp_path / "ml")]
    for channel in channels:
        args += ["--channel", channel]
    return main([*args, "--output-uri", f"file://{tmp_path}/out"])


def test_failure_is_uploaded_and_a_stale_one_removed(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "failure").write_text("old failure\n")
    assert _job(tmp_path, "evaluate", f"model=file://{tmp_path}/missing.tar.gz") == 2
    failure = (out / "failure").read_text()
    assert "missing.tar.gz does not exist" in failure and "old failure" not in failure


def test_a_failed_rerun_leaves_nothing_of_the_previous_attempt_published(tmp_path):
    """Audit: a rerun removed only the old `failure`, so a failed rerun left the previous
    attempt's model and metrics beside its own failure, shown as if current."""
    out = tmp_path / "out"
    (out / "nested").mkdir(parents=True)
    for name in ("model.tar.gz", "evaluation.json", "nested/confusion_matrix.png"):
        (out / name).write_bytes(b"previous attempt")
    assert _job(tmp_path, "evaluate", f"model=file://{tmp_path}/missing.tar.gz") == 2
    assert sorted(p.name for p in out.rglob("*")) == ["failure", "summary.json"]


def test_the_summary_is_published_last(tmp_path):
    """summary.json marks a step's outputs complete: readers that see it see all of them."""
    from tasks.staging import upload_folder

    local = tmp_path / "local"
    (local / "z").mkdir(parents=True)
    for name in ("a.json", "summary.json", "z/model.tar.gz"):
        (local / name).write_text(name)
    uploaded = upload_folder(local, f"file://{tmp_path}/out", last="summary.json")
    assert uploaded[-1] == f"file://{tmp_path}/out/summary.json" and len(uploaded) == 3
    assert (tmp_path / "out" / "z" / "model.tar.gz").read_text() == "z/model.tar.gz"


def test_a_rerun_does_not_see_channels_of_an_earlier_attempt(tmp_path):
    from tasks.contract import MLRoot
    from tasks.job import prepare

    ml = MLRoot(tmp_path / "ml")
    stale = ml.channel("model")
    stale.mkdir(parents=True)
    (stale / "model.tar.gz").write_bytes(b"old")
    data = tmp_path / "train"
    data.mkdir()
    prepare(ml, {"train": f"file://{data}"}, {"epochs": "1"}, {})
    assert not stale.exists()
    assert ml.channel("train").resolve() == data.resolve()
    assert json.loads(ml.input_data_config_path.read_text()) == {"train": {}}


@pytest.mark.parametrize("step", ["train", "evaluate", "transform"])
def test_an_unknown_algorithm_is_exit_2_with_the_known_ones(tmp_path, step, capsys):
    out = tmp_path / "out"
    assert _job(tmp_path, step, f"model=file://{tmp_path}", algorithm="NOPE") == 2
    assert (
        "unknown algorithm 'NOPE'; known algorithms: image-classification"
        in (out / "failure").read_text()
    )
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["exit_code"], summary["failure"], summary["step"]) == (2, "bad_input", step)
    assert "FAILED: unknown algorithm 'NOPE'" in capsys.readouterr().err


def test_the_trainer_cli_refuses_an_unknown_algorithm(tmp_path):
    from tasks.contract import MLRoot
    from tasks.train import main as train_main

    ml = MLRoot(tmp_path / "ml")
    assert train_main(["--algorithm", "NOPE", "--ml-root", str(ml.root)]) == 2
    assert "known algorithms: image-classification" in ml.failure_path.read_text()


def test_a_channel_the_step_does_not_read_is_refused_before_staging(tmp_path):
    out = tmp_path / "out"
    assert _job(tmp_path, "evaluate", f"labels=file://{tmp_path}/nowhere") == 2
    failure = (out / "failure").read_text()
    assert "does not read a channel 'labels'; allowed: model, validation" in failure


def test_the_step_refuses_uris_the_deployment_does_not_allow(tmp_path, monkeypatch, capsys):
    """The same check as the Airflow side, in the step itself (a pod is started by anyone
    who can trigger a DAG): nothing is staged or written."""
    monkeypatch.setenv("VISION_PIPELINES_ALLOWED_URIS", f"file://{tmp_path}/out")
    assert _job(tmp_path, "evaluate", "model=file:///etc/passwd") == 2
    assert (
        "channel 'model' 'file:///etc/passwd' is outside the locations" in capsys.readouterr().err
    )
    assert not (tmp_path / "ml").exists() and not (tmp_path / "out").exists()
    monkeypatch.delenv("VISION_PIPELINES_ALLOWED_URIS")
    assert _job(tmp_path, "evaluate", "model=s3://conn@bucket/model.tar.gz") == 2
    assert "connection ids in URIs" in capsys.readouterr().err


def test_sigterm_stops_the_step_as_a_recorded_failure(tmp_path):
    """Audit: as PID 1 in a pod the step ignored SIGTERM and was killed after the grace
    period; now SIGTERM ends it through the contract (failure on file, exit 143 as a shell
    reports SIGTERM, class "terminated": retried, and a tuning trial runs again)."""
    import os
    import signal

    from tasks.contract import attempt, step_summary
    from tasks.job import _stop_on_sigterm

    previous = signal.getsignal(signal.SIGTERM)
    try:
        assert _job(tmp_path, "evaluate", "model=http://x/m.tar.gz") == 2  # ends early
        assert signal.getsignal(signal.SIGTERM) is _stop_on_sigterm
        outcome = attempt(lambda: os.kill(os.getpid(), signal.SIGTERM), tmp_path / "failure")
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert outcome.code == 143
    assert "stopped by SIGTERM" in (tmp_path / "failure").read_text()
    summary = step_summary(step="train", algorithm=None, outcome=outcome)
    assert summary["failure"] == "terminated" and summary["status"] == "failed"


def test_a_stop_that_a_library_turned_into_its_own_error_is_still_a_stop(tmp_path):
    """Seen in a killed tuning run: SIGTERM landed while Keras imported optree, whose module
    init (pybind11) reports any exception as "ImportError: initialization failed", and Keras
    then said optree was missing: the trial was filed as an internal failure and never ran
    again. An error raised while handling the stop is the stop."""
    import os
    import signal

    from tasks.contract import attempt, step_summary
    from tasks.job import _stop_on_sigterm

    def importing() -> None:
        try:
            try:
                os.kill(os.getpid(), signal.SIGTERM)  # the handler raises inside the import
            except Exception as e:
                raise ImportError("initialization failed") from e
        except ImportError:
            raise ImportError("To use Keras, you need to have `optree` installed.") from None

    def plain_import_error() -> None:
        raise ImportError("To use Keras, you need to have `optree` installed.")

    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        stopped = attempt(importing, tmp_path / "stopped")
        failed = attempt(plain_import_error, tmp_path / "failed")
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert stopped.code == 143 and "stopped by SIGTERM" in (tmp_path / "stopped").read_text()
    assert step_summary(step="train", algorithm=None, outcome=stopped)["failure"] == "terminated"
    assert failed.code == 1 and "internal error: ImportError" in failed.reason


def test_a_job_with_a_checkpoint_uri_keeps_its_checkpoints_and_a_later_job_resumes(
    tmp_path, make_ml_root, tiny
):
    """The managed service's CheckpointConfig: checkpoints/ copied to the checkpoint URI at the
    end (the backup kept), copied in by the next job, which trains only the epochs left (how a
    continued tuning trial goes on), each in an ml-root of its own."""
    images = make_shapes_dataset(tmp_path / "images", per_class=6, size=16)
    source = make_ml_root(tmp_path / "prepared", images, tiny)
    checkpoints = tmp_path / "trial" / "checkpoints"

    def train(epochs: int, folder: str) -> dict:
        hyperparameters = {
            **json.loads(source.hyperparameters_path.read_text()),
            "epochs": str(epochs),
        }
        args = [
            "train",
            "--ml-root",
            str(tmp_path / folder),
            "--output-uri",
            f"file://{tmp_path}/{folder}-out",
        ]
        args += [
            "--hyperparameters",
            json.dumps(hyperparameters),
            "--checkpoint-uri",
            f"file://{checkpoints}",
        ]
        for name in ("train", "validation"):
            args += ["--channel", f"{name}=file://{source.channel(name)}"]
        assert main(args) == 0
        return json.loads((tmp_path / f"{folder}-out" / "metrics.json").read_text())

    first = train(1, "first")
    assert first["resumed_after_epoch"] == 0 and len(first["epochs"]) == 1
    assert (checkpoints / "backup").is_dir() and (checkpoints / "history.csv").is_file()
    later = train(3, "later")
    assert later["resumed_after_epoch"] == 1
    assert [e["epoch"] for e in later["epochs"]] == [1, 2, 3]
    assert later["epochs"][0] == first["epochs"][0]  # the first epoch is not trained again
