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
import json
import sys
from pathlib import Path

from tasks.artifact import add_foreign_model_option
from tasks.atomic import atomic_write_text
from tasks.contract import CHAMPION_EVALUATION, COMPARISON, run_job
from tasks.errors import InputError
from tasks.inference import LoadedModel


def evaluate(
    model_path: Path,
    input_path: Path,
    output: Path,
    image_root: Path | None = None,
    *,
    algorithm: str | None = None,
) -> dict:
    """Write the evaluation of the model at `model_path` on `input_path`; return its metrics
    (`algorithm`, when given, is the one the model must be of)."""
    with LoadedModel(model_path, algorithm=algorithm) as model:
        return model.spec.entry_point("evaluate")(
            model, Path(input_path), Path(output), image_root=image_root
        )


def evaluate_champion(
    champion_path: Path, input_path: Path, output_dir: Path, challenger: dict, *, algorithm: str
) -> dict | None:
    """Score the champion on the challenger's evaluation data, beside the challenger's results:
    `champion_evaluation.json` (or why it could not be scored there) and a PNG of both models'
    per-class metric. None when the two cannot be compared."""
    from tasks import plots
    from tasks.algorithms import get_algorithm

    output = output_dir / CHAMPION_EVALUATION
    try:
        champion = evaluate(champion_path, input_path, output, algorithm=algorithm)
        if champion.get("class_names") != challenger.get("class_names"):
            raise InputError(
                f"the champion's classes {champion.get('class_names')} differ from the "
                f"challenger's {challenger.get('class_names')}"
            )
    except InputError as e:
        atomic_write_text(output, json.dumps({"error": str(e)}, indent=2) + "\n")
        print(f"champion not compared: {e}", flush=True)
        return None
    metric = get_algorithm(algorithm).per_class_metric
    both = {
        name: [
            (champion["per_class"].get(name) or {}).get(metric),
            (challenger["per_class"].get(name) or {}).get(metric),
        ]
        for name in challenger.get("class_names", [])
    }
    plots.per_class_comparison(both, ["champion", "challenger"], metric, output_dir / COMPARISON)
    return champion


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
