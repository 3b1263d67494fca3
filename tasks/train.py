"""`python -m tasks.train --algorithm ALGO --ml-root DIR`: one training job (container contract)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tasks.algorithms import ALGORITHMS, get_algorithm
from tasks.contract import DEFAULT_ML_ROOT, MLRoot, Step, attempt, write_summary


def run(algorithm: str, ml: MLRoot) -> dict:
    """Train with the algorithm's trainer (imported only now: it pulls in TensorFlow)."""
    return get_algorithm(algorithm).entry_point("train")(ml)


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tasks.train", description=__doc__)
    parser.add_argument("--algorithm", required=True, help="one of " + ", ".join(ALGORITHMS))
    parser.add_argument("--ml-root", type=Path, default=Path(DEFAULT_ML_ROOT))
    args = parser.parse_args(argv)
    ml = MLRoot(args.ml_root)
    ml.failure_path.unlink(missing_ok=True)
    outcome = attempt(lambda: run(args.algorithm, ml), ml.failure_path)
    summarize(ml, Step.TRAIN, args.algorithm, outcome)
    return outcome.code


if __name__ == "__main__":
    sys.exit(main())
