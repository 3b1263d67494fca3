"""`python -m tasks.train --algorithm ALGO --ml-root DIR`: one training job (container contract)."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from tasks.algorithms import ALGORITHMS, get_algorithm
from tasks.contract import (
    DEFAULT_ML_ROOT,
    MLRoot,
    Step,
    attempt,
    run_job,
    unwritable,
    write_summary,
)
from tasks.errors import InputError
from tasks.settings import setting_text
from tasks.signing import require_deployment_key
from tasks.training import cluster

SEED_ENV = "VISION_PIPELINES_SEED"


def run(algorithm: str, ml: MLRoot) -> dict:
    """Train with the algorithm's trainer (imported only now: it pulls in TensorFlow); with
    $VISION_PIPELINES_SEED set, every random number of the run (initial weights, shuffling,
    augmentation) comes from that seed and TensorFlow's ops run deterministically, so a rerun on
    the same hardware repeats it exactly."""
    train = get_algorithm(algorithm).entry_point("train")
    workers = cluster.current()
    if workers.count > 1:
        from tasks.training.strategy import distribution_strategy

        distribution_strategy(workers)
    seed = setting_text(SEED_ENV) or ""
    if seed:
        if not seed.isdigit():
            raise InputError(f"setting {SEED_ENV}={seed!r}: allowed: a whole number")
        import keras
        import tensorflow as tf

        keras.utils.set_random_seed(int(seed))
        tf.config.experimental.enable_op_determinism()
    return train(ml)


def summarize(ml: MLRoot, step: Step | str, algorithm: str, outcome) -> None:
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


def worker_root(ml: MLRoot, scratch: Path) -> MLRoot:
    """A worker other than the chief reads the job's inputs and writes under `scratch` (its
    checkpoints and model are the chief's twins): it leaves nothing under the job's outputs."""
    (scratch / "input").mkdir(parents=True)
    (scratch / "input" / "data").symlink_to((ml.root / "input" / "data").resolve())
    shutil.copytree(
        ml.config_dir,
        scratch / "input" / "config",
        # the chief may be writing its own resourceconfig.json (through a hidden temporary file)
        ignore=shutil.ignore_patterns(".*", cluster.RESOURCE_CONFIG),
    )
    return MLRoot(scratch)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tasks.train", description=__doc__)
    parser.add_argument("--algorithm", required=True, help="one of " + ", ".join(ALGORITHMS))
    parser.add_argument("--ml-root", type=Path, default=Path(DEFAULT_ML_ROOT))
    args = parser.parse_args(argv)
    if refused := run_job(require_deployment_key, None):
        return refused
    ml = MLRoot(args.ml_root)
    workers = attempt(lambda: cluster.resolve(ml.config_dir), None)
    if workers.code:
        return workers.code
    with tempfile.TemporaryDirectory(prefix="worker-") as scratch:
        if not workers.result.is_chief:
            ml = worker_root(ml, Path(scratch))
        if code := unwritable(ml):
            return code
        cluster.publish(workers.result, ml.config_dir)
        ml.failure_path.unlink(missing_ok=True)
        outcome = attempt(lambda: run(args.algorithm, ml), ml.failure_path)
        summarize(ml, Step.TRAIN, args.algorithm, outcome)
    return outcome.code


if __name__ == "__main__":
    sys.exit(main())
