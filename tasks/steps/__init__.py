"""The step bodies: what train, evaluate and transform do on a prepared ml-root, in one flow that
every command goes through (`python -m tasks.job`, which stages and uploads around it, and
`python -m tasks.train` on an ml-root laid out by the caller, as the container contract has it).

The bodies themselves: training in `fitting`, scoring in `scoring`, batch prediction in
`batch_prediction`; each imports its algorithm's code (and TensorFlow) only when it runs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tasks.algorithms import ALGORITHMS, get_algorithm
from tasks.contract import (
    EVALUATION,
    PREDICTIONS,
    MLRoot,
    Outcome,
    Step,
    attempt,
    find_model_archive,
    read_input_data_config,
    write_summary,
)
from tasks.data.augmented_manifest import MANIFEST_SUFFIXES
from tasks.streaming import pipe_uri
from tasks.training import cluster
from tasks.transform_shards import INPUTS_SUFFIX


def run_step(step: Step | str, algorithm: str, ml: MLRoot) -> Any:
    """Run one step on a prepared ml-root; outputs land in model/ and output/."""
    step = Step(step)
    spec = get_algorithm(algorithm)
    if step is Step.TRAIN:
        # The trainer reads its hyperparameters and settings before its data, and names a
        # missing channel itself (a manifest may stand in for the annotation channels).
        from tasks.steps.fitting import fit

        return fit(spec.id, ml)
    streamed = {c for c, settings in read_input_data_config(ml).items() if pipe_uri(settings)}
    spec.check_channels(
        step, [c for c in spec.channels[step].allowed if ml.channel(c).exists() or c in streamed]
    )
    model = find_model_archive(ml.channel("model"))
    if step is Step.EVALUATE:
        from tasks.steps.scoring import evaluate, evaluate_champion

        data = ml.channel("validation")
        metrics = evaluate(model, data, ml.output_dir / EVALUATION, algorithm=spec.id)
        if ml.channel("champion").exists():  # re-scored on the same data, for the gate
            champion = find_model_archive(ml.channel("champion"))
            evaluate_champion(champion, data, ml.output_dir, metrics, algorithm=spec.id)
        return metrics
    from tasks.steps.batch_prediction import transform

    count = transform(
        model, _data_input(ml.channel("data")), ml.output_dir / PREDICTIONS, algorithm=spec.id
    )
    return {"predictions": count}


def _data_input(channel: Path) -> Path:
    """The transform input: the channel folder, or the one `.lst` / manifest staged into it
    (resolved, so that its relative image paths point where the file really is)."""
    lists = [
        p for p in channel.iterdir() if p.suffix in (".lst", *MANIFEST_SUFFIXES, INPUTS_SUFFIX)
    ]
    return lists[0].resolve() if len(lists) == 1 else channel


def summarize(ml: MLRoot, step: Step | str, algorithm: str, outcome: Outcome) -> None:
    """output/summary.json for `outcome`, with the algorithm's primary metric when it is known."""
    spec = ALGORITHMS.get(algorithm)
    write_summary(
        ml.summary_path,
        step=step,
        algorithm=algorithm,
        outcome=outcome,
        primary_metric=spec.primary_metric if spec else None,
        higher_is_better=spec.higher_is_better if spec else True,
    )


def execute(
    step: Step | str,
    algorithm: str,
    ml: MLRoot,
    workers: cluster.Workers,
    stage: Callable[[], None] | None = None,
) -> int:
    """The one flow of a step on its ml-root: stage its inputs (where the command stages them),
    tell the other workers where this one is, run the step and record how it ended (output/
    failure; on the chief also output/summary.json); its exit code."""

    def work() -> Any:
        if stage:
            stage()
        cluster.publish(workers, ml.config_dir)
        return run_step(step, algorithm, ml)

    ml.failure_path.unlink(missing_ok=True)
    outcome = attempt(work, ml.failure_path)
    if workers.is_chief:
        summarize(ml, step, algorithm, outcome)
    else:
        # Training on several machines: the chief alone writes the step's outputs.
        done = f"worker {workers.index}: exit {outcome.code}; the chief writes the outputs"
        print(done, flush=True)
    return outcome.code
