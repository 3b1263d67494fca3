"""Loading a model.tar.gz for prediction and predicting in batches, for every algorithm.

The model's manifest names its algorithm; the registry says how to serve it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from tasks.algorithms import AlgorithmSpec, UnknownAlgorithmError, get_algorithm
from tasks.artifact import ArtifactError, extract_artifact
from tasks.data.lst import IMAGE_EXTENSIONS
from tasks.errors import InputError
from tasks.limits import check_encoded_image
from tasks.progress import Progress

Predict = Callable[[list[bytes]], np.ndarray]
BATCH_SIZE = 64


class LoadedModel:
    """The manifest, algorithm and prediction function of an extracted model.tar.gz (kept
    while in use); `algorithm`, when given, is the one the model must be of."""

    def __init__(self, tar_path: Path, *, algorithm: str | None = None):
        self._tmp = tempfile.TemporaryDirectory(prefix="model-")
        try:
            extracted = extract_artifact(Path(tar_path), Path(self._tmp.name))
            self.manifest = extracted.manifest
            try:
                self.spec: AlgorithmSpec = get_algorithm(self.manifest.algorithm)
            except UnknownAlgorithmError as e:
                raise ArtifactError(f"{tar_path}: cannot be served here: {e}") from e
            if algorithm is not None and algorithm != self.spec.id:
                raise ArtifactError(
                    f"{tar_path}: a {self.spec.id} model; this step runs {algorithm}"
                )
            self.predict: Predict = self.spec.entry_point("load_predictor")(
                extracted.saved_model_dir
            )
        except BaseException:
            self._tmp.cleanup()
            raise
        self.class_names: list[str] = self.manifest.class_names

    def close(self) -> None:
        self._tmp.cleanup()

    def __enter__(self) -> LoadedModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def find_images(root: Path) -> list[Path]:
    """Every .jpg/.jpeg/.png under `root`, recursively, sorted by relative path."""
    if not root.is_dir():
        raise InputError(f"{root}: input folder does not exist")
    images = sorted(
        (p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS),
        key=lambda p: p.relative_to(root).as_posix(),
    )
    if not images:
        raise InputError(f"{root}: no {', '.join(IMAGE_EXTENSIONS)} images under this folder")
    return images


def predict_images(
    model: LoadedModel,
    images: Iterable[tuple[str, bytes]],
    total: int | None = None,
    *,
    progress: bool = True,
) -> Iterator[tuple[str, np.ndarray]]:
    """(name, prediction) per image, in input order; an undecodable image, or one over the
    caps of tasks.limits, is named. `progress`: a progress line in the log (not for the
    endpoint's requests: a line each would be the server's whole log)."""
    shown = Progress(total, desc="predicting", unit="images") if progress else None
    names: list[str] = []
    blobs: list[bytes] = []

    def flush() -> Iterator[tuple[str, np.ndarray]]:
        try:
            predictions = model.predict(blobs)
        except Exception as e:  # noqa: BLE001 - find which image of the batch is bad
            for name, blob in zip(names, blobs, strict=True):
                try:
                    model.predict([blob])
                except Exception as one:  # noqa: BLE001
                    raise InputError(
                        f"{name}: cannot decode image ({type(one).__name__}); allowed: JPEG or PNG"
                    ) from e
            raise
        yield from zip(names, predictions, strict=True)
        if shown:
            shown.update(len(blobs))
        names.clear()
        blobs.clear()

    for name, blob in images:
        check_encoded_image(name, blob)
        names.append(name)
        blobs.append(blob)
        if len(blobs) == BATCH_SIZE:
            yield from flush()
    if blobs:
        yield from flush()
    if shown:
        shown.close()
