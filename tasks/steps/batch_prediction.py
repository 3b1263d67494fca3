"""The batch transform step's body: predictions for every image of a folder, `.lst`, manifest or
shard listing, written atomically as JSON Lines (or one JSON array)."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

from tasks.atomic import atomic_path
from tasks.data.augmented_manifest import MANIFEST_SUFFIXES, check_manifest, manifest_paths
from tasks.data.lst_validation import validate_lst
from tasks.errors import InputError
from tasks.inference import LoadedModel, find_images
from tasks.staging import read_file
from tasks.transform_shards import INPUTS_SUFFIX, read_inputs

ACCEPT = (
    "application/jsonlines",
    "application/json",
    "application/jsonlines;verbose",
    "application/json;verbose",
)
"""application/json: one JSON array; otherwise JSON Lines, one response per image (as batch
transform assembles them). `;verbose` (classifiers): each line also carries "probabilities",
"labels" and "predicted_label"."""


def inputs(path: Path) -> tuple[list[str], list[str]]:
    """(names for source-ref, readable paths) of a folder, a `.lst` or a manifest."""
    if path.is_dir():
        images = find_images(path)
        return [p.relative_to(path).as_posix() for p in images], [str(p) for p in images]
    if path.suffix == ".lst":
        entries = validate_lst(path, image_root=path.parent)
        return [e.path for e in entries], [str(path.parent / e.path) for e in entries]
    if path.suffix in MANIFEST_SUFFIXES:
        records = check_manifest(path, attribute_names=("source-ref",))
        return [r.ref for r in records], manifest_paths(path, records)
    if path.suffix == INPUTS_SUFFIX:
        return read_inputs(path)
    raise InputError(
        f"{path}: expected a folder of images, a .lst, a .manifest/.jsonl file or a shard's "
        f"{INPUTS_SUFFIX} listing"
    )


def transform(
    model_path: Path,
    input_path: Path,
    output: Path,
    accept: str = ACCEPT[0],
    *,
    algorithm: str | None = None,
    probabilities: bool = False,
    encode_labels: bool = False,
) -> int:
    """Write the predictions file atomically; return the number of images (`algorithm`, when
    given, is the one the model must be of). `probabilities` and `encode_labels` are options
    of semantic-segmentation models (see tasks.algorithms.semantic_segmentation.prediction)."""
    names, paths = inputs(Path(input_path))
    images = ((name, read_file(p)) for name, p in zip(names, paths, strict=True))
    output = Path(output)
    options = {"probabilities": probabilities, "encode_labels": encode_labels}
    with LoadedModel(model_path, algorithm=algorithm) as model, atomic_path(output) as tmp:
        predict = model.spec.entry_point("predict")
        accepted = inspect.signature(predict).parameters
        for option, value in options.items():
            if value and option not in accepted:
                raise InputError(
                    f"--{option.replace('_', '-')} is an option of semantic-segmentation "
                    f"models; {model_path} is a {model.spec.id} model"
                )
        rows = predict(
            model,
            images,
            total=len(names),
            output=output,
            verbose=accept.endswith(";verbose"),
            **{k: v for k, v in options.items() if v},
        )
        with open(tmp, "w", encoding="utf-8") as f:
            if accept == "application/json":
                json.dump(list(rows), f)
            else:
                for row in rows:
                    f.write(json.dumps(row) + "\n")
    print(f"wrote {len(names)} predictions to {output}", flush=True)
    return len(names)
