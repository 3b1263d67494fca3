"""For every registered algorithm and step: the command line the container step sends is the one
`tasks.job` reads, with the channels the registry names, in the algorithm's environment."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from operators.container import ContainerStepOperator
from operators.runners.local import LocalStepOperator
from tasks.algorithms import ALGORITHMS
from tasks.contract import Step
from tasks.job import build_parser

CASES = [(spec, step) for spec in ALGORITHMS.values() for step in Step]
CONTEXT = {"run_id": "manual__x", "logical_date": datetime(2026, 1, 2, tzinfo=timezone.utc)}


@pytest.fixture(autouse=True)
def no_cluster(monkeypatch, tmp_path):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing-kubeconfig"))
    monkeypatch.delenv("VISION_PIPELINES_TRAINER_PYTHON", raising=False)


def _operator(spec, step, runner):
    channels = {name: f"s3://bucket/run/{name}" for name in spec.channels[step].allowed}
    return ContainerStepOperator(
        task_id=step.value,
        step=step.value,
        algorithm=spec.id,
        channels=channels,
        output_uri="s3://bucket/run/out",
        hyperparameters=dict(spec.smallest) if step is Step.TRAIN else None,
        runner=runner,
    )


@pytest.mark.parametrize(("spec", "step"), CASES, ids=lambda v: getattr(v, "id", str(v)))
def test_local_command_line_is_what_the_job_reads(spec, step):
    local = _operator(spec, step, "local").build(CONTEXT)
    assert isinstance(local, LocalStepOperator)
    assert local.python.endswith(f"{spec.environment.venv}/bin/python")
    args = build_parser().parse_args(local.arguments)
    assert (args.step, args.algorithm) == (step.value, spec.id)
    assert sorted(dict(args.channel)) == sorted(spec.channels[step].allowed)
    spec.check_channels(step, dict(args.channel))
    assert args.output_uri == "s3://bucket/run/out"
    if step is Step.TRAIN:
        assert args.hyperparameters == dict(spec.smallest)


@pytest.mark.parametrize(("spec", "step"), CASES, ids=lambda v: getattr(v, "id", str(v)))
def test_pod_runs_the_same_command_in_the_algorithms_image(spec, step):
    op = _operator(spec, step, "kubernetes")
    pod_operator = op.build(CONTEXT)
    assert pod_operator.deferrable is True
    pod = pod_operator.build_pod_request_obj(dry_run=True)
    container = pod.spec.containers[0]
    assert container.image == spec.environment.image
    assert container.command == ["python", "-m", "tasks.job"]
    args = build_parser().parse_args(container.args)
    assert (args.step, args.algorithm, str(args.ml_root)) == (step.value, spec.id, "/opt/ml")
    assert sorted(dict(args.channel)) == sorted(spec.channels[step].allowed)


def test_an_unknown_algorithm_fails_the_dag_file_with_the_known_ones():
    with pytest.raises(ValueError, match="unknown algorithm 'NOPE'; known algorithms: image-"):
        ContainerStepOperator(
            task_id="t", step="train", algorithm="NOPE", channels={}, output_uri="x"
        )
