"""`python -m tasks.evaluate --model MODEL.tar.gz --input PATH --output evaluation.json`.

Scores a model on labelled data with the evaluation of its algorithm (named in its manifest).
image-classification: PATH is a `.rec` (or a folder holding one), a `.lst` (images relative to its
folder, or to --image-root), an augmented manifest (`.manifest` / `.jsonl`), or a class-folder
tree whose folder names are the model's class names; writes accuracy and loss, per-class
precision, recall and F1 (multi-label: also average precision and mAP), and a confusion-matrix
PNG (single-label) beside the output.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tasks.artifact import add_foreign_model_option
from tasks.contract import run_job
from tasks.steps.scoring import evaluate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tasks.evaluate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", type=Path, required=True, help="model.tar.gz")
    parser.add_argument(
        "--input", type=Path, required=True, help=".rec, .lst, manifest or class folders"
    )
    parser.add_argument("--output", type=Path, required=True, help="evaluation.json to write")
    parser.add_argument("--image-root", type=Path, help="root of a .lst's image paths")
    parser.add_argument("--failure-file", type=Path, help="where to write the failure reason")
    add_foreign_model_option(parser)
    args = parser.parse_args(argv)
    return run_job(
        lambda: evaluate(args.model, args.input, args.output, args.image_root), args.failure_file
    )


if __name__ == "__main__":
    sys.exit(main())
