"""`python -m tasks.lifecycle show|rollback --models-uri URI --pipeline NAME`: the champion of a
pipeline, its history, and rollback to an earlier champion."""

from __future__ import annotations

import argparse
import json
import sys

from tasks.contract import run_job
from tasks.lifecycle.champion import read_pointer, rollback


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tasks.lifecycle", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (("show", "print champion.json"), ("rollback", "promote an earlier one")):
        command = commands.add_parser(name, help=text)
        command.add_argument("--models-uri", required=True, help="file:// or s3:// prefix")
        command.add_argument("--pipeline", required=True, help="e.g. image_classification")
        if name == "rollback":
            command.add_argument(
                "--to-run", help="the run id of the champion to restore (default: the previous)"
            )
    args = parser.parse_args(argv)

    def job() -> None:
        if args.command == "show":
            print(json.dumps(read_pointer(args.models_uri, args.pipeline), indent=2))
            return
        entry = rollback(args.models_uri, args.pipeline, args.to_run)
        print(f"champion of {args.pipeline} is now run {entry['run_id']}: {entry['model_uri']}")

    return run_job(job, None)


if __name__ == "__main__":
    sys.exit(main())
