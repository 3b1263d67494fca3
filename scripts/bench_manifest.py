"""`make bench-manifest`: validating a 1M-line augmented manifest, ours against Great Expectations
used the usual way (every record in one DataFrame, one validation), same file, same run.

Both check the same things (JSON lines, references' form, unique references, class range). Great
Expectations runs in its own environment (.venv-ge, `scripts/great_expectations.lock`); ours in
the Airflow environment, which no longer has it. Ours is also run on a tenth of the lines, to show
how little its memory grows with the manifest. Peak memory is the whole process's max RSS.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from benchmark_report import (
    AIRFLOW_PYTHON,
    GE_PYTHON,
    PINNED,
    RUNS,
    alternating,
    benchmark_parser,
    ratio_text,
    ratios,
    spread,
    timed,
    warm_page_cache,
    write_section,
)

from tasks.data.manifest_validation import REF_PATTERN
from tasks.data.synthetic import write_reference_manifest

GE_IMPORT = "import great_expectations, pandas"
OURS = """
import sys
from pathlib import Path
from tasks.data.manifest_validation import validate_manifest
validate_manifest(Path(sys.argv[1]), attribute_names=["source-ref", "class"],
                  content_type="application/x-recordio", num_classes=10)
"""
ONE_DATAFRAME = """
import json, sys
import great_expectations as gx
import pandas as pd
REF_PATTERN = sys.argv[2]  # ours, passed in: this environment has none of our dependencies
rows = []
with open(sys.argv[1], "rb") as f:
    for line, raw in enumerate(f, 1):
        obj = json.loads(raw)
        rows.append((line, obj["source-ref"], int(obj["class"])))
frame = pd.DataFrame(rows, columns=["line", "ref", "label"])
context = gx.get_context(mode="ephemeral")
context.variables.progress_bars = {"globally": False}
batch = (context.data_sources.add_pandas(name="m").add_dataframe_asset(name="r")
         .add_batch_definition_whole_dataframe(name="all"))
suite = context.suites.add(gx.ExpectationSuite(name="m"))
E = gx.expectations
suite.add_expectation(E.ExpectColumnValuesToNotBeNull(column="ref"))
suite.add_expectation(E.ExpectColumnValuesToMatchRegex(column="ref", regex=REF_PATTERN))
suite.add_expectation(E.ExpectColumnValuesToBeUnique(column="ref"))
suite.add_expectation(E.ExpectColumnValuesToBeBetween(column="label", min_value=0, max_value=9))
result = batch.get_batch(batch_parameters={"dataframe": frame}).validate(
    suite, result_format={"result_format": "COMPLETE", "unexpected_index_column_names": ["line"]})
assert result.success
"""


def main() -> int:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=RUNS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-manifest-") as tmp:
        big, small = Path(tmp) / "big.manifest", Path(tmp) / "small.manifest"
        print(f"writing {args.lines} and {args.lines // 10} manifest lines ...", flush=True)
        write_reference_manifest(big, args.lines)
        write_reference_manifest(small, args.lines // 10)
        warm_page_cache(Path(tmp))
        _, ge_import = timed([GE_PYTHON, "-c", GE_IMPORT])
        reference, ours = alternating(
            [
                lambda: timed([GE_PYTHON, "-c", ONE_DATAFRAME, big, REF_PATTERN]),
                lambda: timed([AIRFLOW_PYTHON, "-c", OURS, big]),
            ],
            args.runs,
        )
        _, ours_small = timed([AIRFLOW_PYTHON, "-c", OURS, small])
    seconds = [[s for s, _ in side] for side in (reference, ours)]
    memory = [[m for _, m in side] for side in (reference, ours)]
    row = (
        f"| validate {args.lines:,} lines (single-label, s3:// refs) "
        f"| {spread(seconds[0], 1, 's')}, {spread(memory[0], 0, 'MiB')} "
        f"| {spread(seconds[1], 1, 's')}, {spread(memory[1], 0, 'MiB')} "
        f"| {ratio_text(ratios(*seconds, lower_is_better=True))} "
        f"| {ratio_text(ratios(*memory, lower_is_better=True))} "
        f"| {ours_small} MiB | {ge_import} MiB |"
    )
    print(row, flush=True)
    write_section(
        args.output,
        "Manifest validation (`make bench-manifest`)",
        "Command: `make bench-manifest` (`.venv/bin/python scripts/bench_manifest.py`), on the "
        f"build machine ({os.cpu_count()} cores). Reference: Great Expectations 1.24 the usual "
        "way, every record in one pandas DataFrame and one validation (what our validation did "
        "first); ours: one pass, lines parsed and checked one by one, unique references from "
        "8-byte hashes, no Great Expectations. Memory is the whole process's peak RSS "
        f"(issue 9's bar: 1M lines under 200 MiB). Median (range) of {args.runs} runs, the "
        f"ratios' ranges from each run's pair. {PINNED}",
        "| benchmark | GE, one DataFrame | ours, one pass | speed-up | memory ratio "
        "| ours on a tenth of the lines | importing GE + pandas alone |",
        [row],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
