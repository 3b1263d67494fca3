"""`python -m tasks.train --algorithm ALGO --ml-root DIR`: one training job (container contract)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tasks.contract import DEFAULT_ML_ROOT, MLRoot, run_job

ALGORITHMS = ("image-classification",)


def run(algorithm: str, ml: MLRoot) -> None:
    """Dispatch to the algorithm's trainer (imported lazily: each pulls in TensorFlow)."""
    if algorithm == "image-classification":
        from tasks.image_classification.training import train

        train(ml)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tasks.train", description=__doc__)
    parser.add_argument("--algorithm", required=True, choices=ALGORITHMS)
    parser.add_argument("--ml-root", type=Path, default=Path(DEFAULT_ML_ROOT))
    args = parser.parse_args(argv)
    ml = MLRoot(args.ml_root)
    if ml.failure_path.exists():
        ml.failure_path.unlink()
    return run_job(lambda: run(args.algorithm, ml), ml.failure_path)


if __name__ == "__main__":
    sys.exit(main())
