"""Check a segmentation dataset (formats.md) in one pass, reporting every problem.

A dataset is image/annotation pairs, from the four-folder layout or an augmented manifest. Each
pair must decode, have the same width and height on both sides, and a single-channel 8-bit PNG
annotation (mode P or L); given the classes, every annotation value (after the label map) must be
a class index or 255 (ignore).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, UnidentifiedImageError

from tasks.data.label_map import IGNORE, UNCOVERED, LabelMap
from tasks.data.lst import IMAGE_EXTENSIONS
from tasks.errors import InputError
from tasks.problems import Problem, describe
from tasks.staging import read_file
from tasks.streaming import Location, files_in, name_of

SPLITS = ("train", "validation")
LABEL_MAP_FILES = ("train_label_map.json", "validation_label_map.json")
ANNOTATION_MODES = ("P", "L")


class LayoutError(InputError):
    """A segmentation dataset that does not follow the layout; every problem is listed."""


@dataclass(frozen=True)
class Pair:
    """One image and its annotation: readable locations and the names messages use."""

    image: str
    annotation: str
    image_name: str
    annotation_name: str


def pair_folders(images_dir: Location, annotation_dir: Location) -> tuple[list[Pair], list[str]]:
    """Images and annotations matched by stem, and a problem per orphan or non-PNG annotation
    (folders on this machine, or where they lie in object storage: Pipe input mode)."""
    split, ann_split = name_of(images_dir), name_of(annotation_dir)
    listed = {d: files_in(d) for d in (images_dir, annotation_dir)}
    missing = [f"folder {name_of(d)}/ is missing" for d, files in listed.items() if files is None]
    if missing:
        return [], missing
    images = {
        PurePosixPath(name_of(p)).stem: p
        for p in listed[images_dir] or ()
        if PurePosixPath(name_of(p)).suffix.lower() in IMAGE_EXTENSIONS
    }
    annotations = {PurePosixPath(name_of(p)).stem: p for p in listed[annotation_dir] or ()}
    problems = [
        f"{split}/{name_of(images[s])} has no annotation {ann_split}/{s}.png"
        for s in sorted(images.keys() - annotations.keys())
    ]
    problems += [
        f"{ann_split}/{name_of(annotations[s])} has no image in {split}/"
        for s in sorted(annotations.keys() - images.keys())
    ]
    pairs = []
    for stem in sorted(images.keys() & annotations.keys()):
        ann = annotations[stem]
        if PurePosixPath(name_of(ann)).suffix.lower() != ".png":
            problems.append(f"{ann_split}/{name_of(ann)}: annotations must be PNG")
            continue
        pairs.append(
            Pair(
                str(images[stem]),
                str(ann),
                f"{split}/{name_of(images[stem])}",
                f"{ann_split}/{name_of(ann)}",
            )
        )
    if not images and not annotations:
        problems.append(f"{split}/ and {ann_split}/ are empty")
    return pairs, problems


def _open(path: str, name: str) -> Image.Image | str:
    try:
        img = Image.open(io.BytesIO(read_file(path)))
        img.size  # noqa: B018 - the header is parsed now
        return img
    except (OSError, UnidentifiedImageError) as e:
        return f"cannot read {name}: {e}"


def _values_problem(img: Image.Image, lut: np.ndarray, num_classes: int) -> str | None:
    classes = lut[np.asarray(img)]
    bad = (classes == UNCOVERED) | ((classes >= num_classes) & (classes != IGNORE))
    if not bad.any():
        return None
    values = sorted(int(v) for v in np.unique(np.asarray(img)[bad]))
    return (
        f"pixel values {values[:10]} are neither a class (0..{num_classes - 1}"
        f"{'' if (lut == np.arange(256)).all() else ' after the label map'}) "
        "nor 255 (ignore)"
    )


def check_pair(
    pair: Pair, *, lut: np.ndarray | None = None, num_classes: int | None = None
) -> tuple[list[str], tuple[int, int] | None]:
    """Problems of one pair, and its (width, height) when it can be read."""
    image, annotation = (
        _open(pair.image, pair.image_name),
        _open(pair.annotation, pair.annotation_name),
    )
    problems = [info for info in (image, annotation) if isinstance(info, str)]
    if problems:
        return problems, None
    if annotation.mode not in ANNOTATION_MODES:
        problems.append(
            f"{pair.annotation_name}: mode {annotation.mode}; annotations must be single-channel "
            "8-bit PNGs (mode P or L)"
        )
    if annotation.size != image.size:
        problems.append(
            f"{pair.annotation_name} is {annotation.size[0]}x{annotation.size[1]}, its image "
            f"{PurePosixPath(pair.image_name).name} is {image.size[0]}x{image.size[1]}"
        )
    if not problems and num_classes is not None:
        try:
            found = _values_problem(
                annotation, lut if lut is not None else LabelMap().table(), num_classes
            )
        except OSError as e:
            found = f"cannot decode: {e}"
        if found:
            problems.append(f"{pair.annotation_name}: {found}")
    return problems, image.size


def check_pairs(
    pairs: Sequence[Pair],
    *,
    lut: np.ndarray | None = None,
    num_classes: int | None = None,
    workers: int = 8,
) -> tuple[list[str], list[tuple[int, int]]]:
    """Every problem of `pairs` (in order) and the (width, height) of each image."""
    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(lambda p: check_pair(p, lut=lut, num_classes=num_classes), pairs))
    problems = [p for found, _ in results for p in found]
    return problems, [size or (0, 0) for _, size in results]


def raise_problems(source: str, problems: list[str]) -> None:
    if problems:
        raise LayoutError(describe(source, [Problem(0, p) for p in problems]))


def check_segmentation_layout(
    root: str | Path, *, num_classes: int | None = None, label_maps: dict | None = None
) -> dict[str, int]:
    """Pairs per split when the layout is right; otherwise LayoutError with every problem.
    With `num_classes`, annotation values are checked too (through `label_maps`, split -> 256
    entry lookup table, where a split has one)."""
    root = Path(root)
    problems: list[str] = []
    pairs: dict[str, int] = {}
    for split in SPLITS:
        found, orphans = pair_folders(root / split, root / f"{split}_annotation")
        problems += orphans
        bad, _ = check_pairs(found, lut=(label_maps or {}).get(split), num_classes=num_classes)
        problems += bad
        pairs[split] = len(found)
    label_map_dir = root / "label_map"
    if label_map_dir.is_dir():
        problems += [
            f"label_map/{p.name}: expected only {' and '.join(LABEL_MAP_FILES)}"
            for p in sorted(label_map_dir.iterdir())
            if p.name not in LABEL_MAP_FILES
        ]
    raise_problems(str(root), problems)
    return pairs


def main(argv: list[str] | None = None) -> int:
    """`python -m tasks.data.segmentation_layout ROOT`: exit 0 and the pair counts, or exit 2
    and every problem."""
    import argparse

    from tasks.contract import run_job

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("root", type=Path)
    args = parser.parse_args(argv)
    return run_job(
        lambda: print(f"{args.root}: OK, pairs {check_segmentation_layout(args.root)}"), None
    )


if __name__ == "__main__":
    raise SystemExit(main())
