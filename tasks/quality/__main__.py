"""`python -m tasks.quality --profile P [--profile P ...] --suite S --output DIR
[--champion-profile C] [--run-name RUN]`: exit 0 when no critical expectation failed (warnings
are printed), 2 with one sentence per failed critical expectation, 2 for a suite that cannot
run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tasks.quality.validate import SuiteError, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tasks.quality", description=__doc__)
    parser.add_argument("--profile", type=Path, action="append", required=True)
    parser.add_argument("--suite", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--champion-profile", type=Path)
    parser.add_argument("--run-name", help="the Airflow run, as Data Docs names the validation")
    args = parser.parse_args(argv)
    try:
        summary = run(args.profile, args.suite, args.output, args.champion_profile, args.run_name)
    except SuiteError as e:
        print(f"{args.suite}: {e}", file=sys.stderr)
        return 2
    for line in summary["skipped"]:
        print(f"skipped {line}")
    for outcome in summary["results"]:
        state = "passed" if outcome["success"] else "FAILED"
        print(f"{state} [{outcome['severity']}] {outcome['expectation']} {outcome['column'] or ''}")
    for line in summary["warnings"]:
        print(f"warning: {line}")
    if summary["critical"]:
        print("; ".join(summary["critical"]), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
