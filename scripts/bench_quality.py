"""`make bench-quality`: the data-quality step's Great Expectations run (`python -m tasks.quality`
in `.venv-ge`, the shipped image_classification suite, drift against a champion profile of the
same size) on a 1M-record profile, and on a tenth of it, to show how time and memory grow.
Peak memory is the whole process's max RSS; the goal (issue 25): under 1 GiB and 60 s at 1M.
"""

from __future__ import annotations

import functools
import os
import random
import sys
import tempfile
from pathlib import Path

from benchmark_report import (
    GE_PYTHON,
    ROOT,
    RUNS,
    alternating,
    benchmark_parser,
    spread,
    timed,
    write_section,
)

from tasks.data.profile import ImageFacts, ProfileRow, write_profile

SUITE = ROOT / "expectations" / "image_classification.json"


def profile(path: Path, records: int, seed: int) -> Path:
    """`records` rows of 10 classes, photo-like sizes."""
    rng = random.Random(seed)
    rows = (
        ProfileRow(
            "train" if i % 5 else "validation",
            rng.randrange(10),
            f"images/{i:07d}.jpg",
            ImageFacts(rng.choice((320, 480, 640)), rng.choice((240, 360, 480)), "RGB", 40_000),
        )
        for i in range(records)
    )
    return write_profile(path, rows)


def main() -> int:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=RUNS)
    args = parser.parse_args()
    sizes = (args.records // 10, args.records)
    with tempfile.TemporaryDirectory(prefix="bench-quality-") as tmp:
        commands = []
        for records in sizes:
            run = profile(Path(tmp) / f"run-{records}.csv.gz", records, seed=1)
            champion = profile(Path(tmp) / f"champion-{records}.csv.gz", records, seed=2)
            command = [GE_PYTHON, "-m", "tasks.quality", "--profile", run, "--suite", SUITE]
            command += ["--champion-profile", champion, "--output", Path(tmp) / f"out-{records}"]
            commands.append(command)
        measured = alternating([functools.partial(timed, c) for c in commands], args.runs)
    rows = []
    for records, runs in zip(sizes, measured, strict=True):
        seconds, mib = [s for s, _ in runs], [m for _, m in runs]
        within = max(seconds) < 60 and max(mib) < 1024
        rows.append(
            f"| {records:,} records (+ the champion's {records:,}) | {spread(seconds, 1, 's')} "
            f"| {spread(mib, 0, 'MiB')} | {'yes' if within else 'no'} |"
        )
        print(rows[-1], flush=True)
    write_section(
        args.output,
        "Data quality with Great Expectations (`make bench-quality`)",
        "Command: `make bench-quality` (`.venv/bin/python scripts/bench_quality.py`), on the "
        f"build machine ({os.cpu_count()} cores): `python -m tasks.quality` in `.venv-ge` with "
        "the shipped image_classification suite (6 expectations, 3 of them drift against the "
        "champion's profile), the profile and the champion's read from gzip'd CSV, GE's result, "
        "Data Docs page and summary written. The structural checks' figures are in the manifest "
        "table above, unchanged. Goal: under 60 s and 1 GiB at 1M records, every run. Median "
        f"(range) of {args.runs} runs, the two sizes alternating.",
        "| profile | time | peak memory | within the goal |",
        rows,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
