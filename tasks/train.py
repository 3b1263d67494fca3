"""`python -m tasks.train --algorithm ALGO --ml-root DIR`: one training job on an ml-root laid out
as the container contract has it (input/config, input/data/CHANNEL), through the same flow as
`python -m tasks.job train` (tasks.steps.execute), without staging or uploading."""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from tasks.algorithms import ALGORITHMS
from tasks.contract import (
    DEFAULT_ML_ROOT,
    MLRoot,
    Step,
    attempt,
    exit_process,
    run_job,
    unwritable,
)
from tasks.signing import require_deployment_key
from tasks.steps import execute
from tasks.training import cluster


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
        return execute(Step.TRAIN, args.algorithm, ml, workers.result)


if __name__ == "__main__":
    exit_process(main())
