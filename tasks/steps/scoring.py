"""The evaluation step's body: a model scored on labelled data by its algorithm's evaluation, and
the champion re-scored beside it for the gate."""

from __future__ import annotations

import json
from pathlib import Path

from tasks.atomic import atomic_write_text
from tasks.contract import CHAMPION_EVALUATION, COMPARISON
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
