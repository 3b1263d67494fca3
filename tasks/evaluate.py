"""`python -m tasks.evaluate --model MODEL.tar.gz --input PATH --output metrics.json`.

PATH is a `.rec` (or a folder holding one) or a class-folder tree whose folder names are the
model's class names. Writes accuracy, loss, per-class metrics and a confusion-matrix PNG beside
the output.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from tasks.contract import atomic_write_text, run_job
from tasks.data.recordio import RecordIOReader, unpack
from tasks.errors import InputError
from tasks.inference import LoadedModel, find_images, predict_images


def _recordio_examples(rec_path: Path) -> Iterator[tuple[str, bytes, int]]:
    with RecordIOReader(rec_path) as reader:
        for record in reader:
            header, image = unpack(
                record.payload, where=f"{rec_path} at byte offset {record.offset}"
            )
            yield f"{rec_path.name}@{record.offset}", image, int(header.label[0])


def _folder_examples(root: Path, class_names: list[str]) -> Iterator[tuple[str, bytes, int]]:
    index = {name: i for i, name in enumerate(class_names)}
    for path in find_images(root):
        folder = path.parent.relative_to(root).as_posix()
        if folder not in index:
            raise InputError(
                f"{path}: folder {folder!r} is not a class of this model; allowed: "
                + ", ".join(class_names)
            )
        yield path.relative_to(root).as_posix(), path.read_bytes(), index[folder]


def examples(path: Path, class_names: list[str]) -> Iterator[tuple[str, bytes, int]]:
    """(name, encoded image, label) from a .rec, a folder holding one .rec, or class folders."""
    if path.is_file() and path.suffix == ".rec":
        return _recordio_examples(path)
    recs = sorted(path.glob("*.rec")) if path.is_dir() else []
    if len(recs) == 1:
        return _recordio_examples(recs[0])
    if not path.exists():
        raise InputError(f"{path}: evaluation input not found")
    return _folder_examples(path, class_names)


def evaluate(model_path: Path, input_path: Path, output: Path) -> dict:
    with LoadedModel(model_path) as model:
        names = model.class_names
        labels: list[int] = []

        def images() -> Iterator[tuple[str, bytes]]:
            for name, blob, label in examples(input_path, names):
                if not 0 <= label < len(names):
                    raise InputError(f"{name}: label {label} is outside 0..{len(names) - 1}")
                labels.append(label)
                yield name, blob

        probabilities = np.stack([p for _, p in predict_images(model, images())])
    y = np.asarray(labels)
    predicted = probabilities.argmax(axis=1)
    n = len(names)
    matrix = np.zeros((n, n), dtype=np.int64)
    np.add.at(matrix, (y, predicted), 1)
    true_positive = np.diag(matrix).astype(float)
    precision = np.divide(true_positive, matrix.sum(0), out=np.zeros(n), where=matrix.sum(0) > 0)
    recall = np.divide(true_positive, matrix.sum(1), out=np.zeros(n), where=matrix.sum(1) > 0)
    f1 = np.divide(
        2 * precision * recall, precision + recall, out=np.zeros(n), where=(precision + recall) > 0
    )
    picked = probabilities[np.arange(len(y)), y]
    metrics = {
        "samples": int(len(y)),
        "accuracy": float((predicted == y).mean()),
        "loss": float(-np.log(np.clip(picked, 1e-12, 1.0)).mean()),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(matrix[i].sum()),
            }
            for i, name in enumerate(names)
        },
        "confusion_matrix": matrix.tolist(),
        "class_names": names,
    }
    atomic_write_text(output, json.dumps(metrics, indent=2) + "\n")
    from tasks import plots

    plots.confusion_matrix_png(
        matrix, names, output.with_name(output.stem + "_confusion_matrix.png")
    )
    print(
        f"accuracy {metrics['accuracy']:.4f}, loss {metrics['loss']:.4f} on {len(y)} images; "
        f"wrote {output}",
        flush=True,
    )
    return metrics


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tasks.evaluate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", type=Path, required=True, help="model.tar.gz")
    parser.add_argument("--input", type=Path, required=True, help=".rec or class folders")
    parser.add_argument("--output", type=Path, required=True, help="metrics.json to write")
    parser.add_argument("--failure-file", type=Path, help="where to write the failure reason")
    args = parser.parse_args(argv)
    return run_job(lambda: evaluate(args.model, args.input, args.output), args.failure_file)


if __name__ == "__main__":
    sys.exit(main())
