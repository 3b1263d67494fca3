"""Batch transform in shards on this machine (`make bench-transform-shards`).

A ResNet-18 trained for one epoch on generated 64x64 images predicts a folder of images twice,
as the local runner runs batch transform: one `python -m tasks.job transform` of the whole
folder (transform_shards=1), then the same split into 2 shards (tasks/transform_shards.py: list
once, one process per shard, concurrently, then the join). Images/s of the whole transform,
listing and join included; the ratio is what sharding gains here. The table goes into
docs/benchmarks.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.bench_scaling import ml_root  # noqa: E402
from scripts.benchmark_report import (  # noqa: E402
    ENV,
    RUNS,
    TRAINER_PYTHON,
    alternating,
    benchmark_parser,
    pair_row,
    write_section,
)
from tasks.data.synthetic import TEN_CLASSES, make_shapes_dataset  # noqa: E402
from tasks.transform_shards import join, shard_uri, split  # noqa: E402


def transform(model: Path, data_uri: str, output_uri: str, ml: Path) -> subprocess.Popen:
    command = [
        str(TRAINER_PYTHON),
        "-m",
        "tasks.job",
        "transform",
        "--ml-root",
        str(ml),
        "--channel",
        f"model=file://{model}",
        "--channel",
        f"data={data_uri}",
        "--output-uri",
        output_uri,
    ]
    return subprocess.Popen(command, env=ENV, cwd=ROOT, stdout=subprocess.DEVNULL)


def sharded(model: Path, images: Path, work: Path, shards: int) -> float:
    """Seconds for a transform of `images` in `shards` concurrent processes, into a fresh
    `work` folder."""
    out = f"file://{work}/out-{shards}"
    started = time.perf_counter()
    listings = split(f"file://{images}", out, shards)
    processes = [
        transform(model, listing, shard_uri(out, i), work / f"ml-{shards}-{i}")
        for i, listing in enumerate(listings)
    ]
    if [p.wait() for p in processes] != [0] * len(processes):
        raise RuntimeError("a shard failed")
    lines = join(out, len(listings))
    seconds = time.perf_counter() - started
    if lines != sum(1 for _ in images.rglob("*.jpg")):
        raise RuntimeError(f"the join wrote {lines} lines")
    return seconds


def main() -> int:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--per-class", type=int, default=150)
    parser.add_argument("--runs", type=int, default=RUNS)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        images = make_shapes_dataset(
            work / "images", per_class=args.per_class, classes=TEN_CLASSES, size=64
        )
        count = args.per_class * len(TEN_CLASSES)
        ml = ml_root(work / "train", images, epochs=1, batch=32)
        hp = json.loads(ml.hyperparameters_path.read_text())
        ml.hyperparameters_path.write_text(
            json.dumps({**hp, "num_layers": "18", "image_shape": "3,64,64"})
        )
        subprocess.run(
            [
                str(TRAINER_PYTHON),
                "-m",
                "tasks.train",
                "--algorithm",
                "image-classification",
                "--ml-root",
                str(ml.root),
            ],
            env=ENV,
            cwd=ROOT,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        runs = iter(range(2 * args.runs))

        def rate(shards: int) -> float:
            folder = work / f"run-{next(runs)}"
            folder.mkdir()
            seconds = sharded(ml.model_archive, images, folder, shards)
            print(f"{shards} shard(s): {count / seconds:.1f} images/s", flush=True)
            return count / seconds

        one, two = alternating([lambda: rate(1), lambda: rate(2)], args.runs)
    row = pair_row(f"ResNet-18, 64x64, {count} images", one, two, "img/s", digits=1)
    write_section(
        args.output,
        "Batch transform in shards (`make bench-transform-shards`)",
        "Command: `make bench-transform-shards` (`.venv/bin/python scripts/bench_transform.py`): a "
        "whole batch transform as the local runner runs it (listing, one `python -m tasks.job "
        "transform` process per shard, concurrently, and the join), 1 shard against 2, on the "
        f"build machine ({os.cpu_count()} cores, no GPU). Here both shards share {os.cpu_count()} "
        "cores that one TensorFlow process already keeps busy, so the ratio is the cost of "
        "splitting (the listing, a second process start, the join); on a cluster each shard is a "
        "pod of its own and the shards add their machines. Median (range) of "
        f"{args.runs} runs, 1 and 2 shards alternating; the ratio's range from each run's pair.",
        "| model and input | 1 shard | 2 shards | ratio |",
        [row],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
