"""Batch transform of a segmentation model: a palette PNG mask per image at the image's own size,
class fractions, and on request float16 per-pixel probabilities (`.npy`)."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath

import numpy as np

from tasks.algorithms.semantic_segmentation.masks import save_mask, upsample
from tasks.data.label_map import LabelMap, parse_label_map
from tasks.errors import InputError
from tasks.inference import LoadedModel
from tasks.limits import check_encoded_image
from tasks.progress import Progress


def _relative_name(name: str, index: int, used: set[str]) -> str:
    """A file name under the masks folder for input `name`: its own relative path when it is
    one (suffix replaced by .png), else its index and base name."""
    path = PurePosixPath(name)
    plain = "://" not in name and not path.is_absolute() and ".." not in path.parts
    stem = str(path.with_suffix("")) if plain else f"{index:06d}_{path.stem}"
    chosen = f"{stem}.png"
    if chosen in used:
        chosen = f"{stem}_{index:06d}.png"
    used.add(chosen)
    return chosen


def training_label_map(model: LoadedModel) -> LabelMap:
    """The label map the model's training annotations were encoded with (identity if none)."""
    recorded = model.manifest.input.get("label_map")
    if not recorded:
        return LabelMap()
    return parse_label_map(json.dumps(recorded), source="the model's manifest")


def segment(model: LoadedModel, name: str, blob: bytes, probabilities: Path | None = None):
    """The class-index mask (uint8, the image's size) of one encoded image."""
    check_encoded_image(name, blob)
    try:
        ((logits, size),) = model.predict([blob])
    except Exception as e:  # noqa: BLE001 - the decoder's own error types vary
        raise InputError(
            f"{name}: cannot decode image ({type(e).__name__}); allowed: JPEG or PNG"
        ) from e
    return upsample(logits, size, probabilities)


def predict(
    model: LoadedModel,
    images: Iterable[tuple[str, bytes]],
    *,
    total: int,
    output: Path,
    verbose: bool = False,
    probabilities: bool = False,
    encode_labels: bool = False,
) -> Iterator[dict]:
    """{"source-ref", "mask": PNG path relative to `output`'s folder, "class_fractions":
    {class: share of pixels}} per image, in input order; `probabilities` adds "probabilities",
    the path of a float16 HxWxC `.npy`; `encode_labels` writes mask values through the
    training label map instead of class indices. Masks go to `<output stem>_masks/`, which
    replaces an earlier one only once every image is done."""
    names = model.class_names
    values = training_label_map(model).encoding() if encode_labels else None
    folder = output.parent / f"{output.stem}_masks"
    output.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=output.parent))
    progress = Progress(total, desc="segmenting", unit="images")
    used: set[str] = set()
    try:
        for index, (name, blob) in enumerate(images):
            relative = _relative_name(name, index, used)
            npy = (work / relative).with_suffix(".npy") if probabilities else None
            if npy is not None:
                npy.parent.mkdir(parents=True, exist_ok=True)
            mask = segment(model, name, blob, npy)
            save_mask(mask, work / relative, values=values)
            counts = np.bincount(mask.ravel(), minlength=len(names))[: len(names)]
            row = {
                "source-ref": name,
                "mask": f"{folder.name}/{relative}",
                "class_fractions": {
                    n: round(float(c) / mask.size, 6)
                    for n, c in zip(names, counts, strict=True)
                    if c
                },
            }
            if npy is not None:
                row["probabilities"] = (
                    f"{folder.name}/{PurePosixPath(relative).with_suffix('.npy')}"
                )
            progress.update()
            yield row
        progress.close()
        if folder.exists():
            shutil.rmtree(folder)
        work.rename(folder)
    finally:
        if work.exists():
            shutil.rmtree(work)
