"""Image/annotation pairs of one split (TF-free): the four-folder layout or an augmented manifest,
its label map, and every problem found before any training starts."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from tasks.data.augmented_manifest import (
    MANIFEST_SUFFIXES,
    ManifestError,
    check_manifest,
    manifest_paths,
)
from tasks.data.label_map import LabelMap, LabelMapError, read_label_map
from tasks.data.segmentation_layout import (
    LABEL_MAP_FILES,
    Pair,
    check_pairs,
    pair_folders,
    raise_problems,
)
from tasks.staging import read_file
from tasks.streaming import Location, files_in, is_file, name_of, open_input, pipe_uri

IMAGE_REF = "source-ref"


@dataclass(frozen=True)
class Split:
    """The checked pairs of one split, their image sizes and the label map's lookup table."""

    name: str
    pairs: list[Pair]
    sizes: list[tuple[int, int]]
    label_map: LabelMap = field(default_factory=LabelMap)

    def __len__(self) -> int:
        return len(self.pairs)

    def subset(self, items: range) -> Split:
        """These pairs only (a training worker's share)."""
        return replace(
            self,
            pairs=self.pairs[items.start : items.stop],
            sizes=self.sizes[items.start : items.stop],
        )

    @property
    def lut(self) -> np.ndarray:
        return self.label_map.table()

    def read(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Pixels (uint8 RGB, HxWx3) and class indices (uint8 HxW; 255 ignore) of pair `i`."""
        pair = self.pairs[i]
        with Image.open(io.BytesIO(read_file(pair.image))) as img:
            image = np.asarray(img.convert("RGB"))
        with Image.open(io.BytesIO(read_file(pair.annotation))) as ann:
            mask = self.lut[np.asarray(ann)].astype(np.uint8)
        return image, mask


def _manifest_in(folder: Location) -> Location | None:
    found = [
        p for p in files_in(folder) or () if PurePosixPath(name_of(p)).suffix in MANIFEST_SUFFIXES
    ]
    if len(found) > 1:
        raise ManifestError(
            f"{folder}: expected one manifest, found {', '.join(name_of(p) for p in found)}"
        )
    return found[0] if found else None


def annotation_attribute(manifest: Location) -> str:
    """The annotation attribute of a manifest without AttributeNames: the one `*-ref` key of
    its first record besides source-ref."""
    with open_input(manifest) as f:
        first = next((line for line in f if line.strip()), b"{}")
    try:
        keys = [k for k in json.loads(first) if k.endswith("-ref") and k != IMAGE_REF]
    except (ValueError, TypeError, AttributeError):
        keys = []
    if len(keys) != 1:
        raise ManifestError(
            f"{manifest}, line 1: cannot tell the annotation attribute (found "
            f"{keys or 'no *-ref key'} besides {IMAGE_REF}); set the channel's AttributeNames "
            f'to ["{IMAGE_REF}", "<annotation>-ref"]'
        )
    return keys[0]


def manifest_pairs(manifest: Location, attribute_names: list[str] | None = None) -> list[Pair]:
    """The pairs of an augmented manifest: AttributeNames = [image ref, annotation ref]."""
    names = attribute_names or [IMAGE_REF, annotation_attribute(manifest)]
    records = check_manifest(manifest, attribute_names=names, segmentation=True)
    images = manifest_paths(manifest, records)
    annotations = manifest_paths(manifest, [replace(r, ref=r.annotation_ref) for r in records])
    return [
        Pair(
            image,
            ann,
            f"{name_of(manifest)}, line {r.line}: {r.ref}",
            f"{name_of(manifest)}, line {r.line}: {r.annotation_ref}",
        )
        for r, image, ann in zip(records, images, annotations, strict=True)
    ]


def label_map_of(folder: Path | None, split: str) -> LabelMap:
    """`<split>_label_map.json` of a label_map folder (the identity when there is none); any
    other file there is refused."""
    if folder is None or not folder.exists():
        return LabelMap()
    others = sorted(p.name for p in folder.iterdir() if p.name not in LABEL_MAP_FILES)
    if others:
        raise LabelMapError(
            f"{folder}: {others[0]} is not a label map file; allowed: "
            + " and ".join(LABEL_MAP_FILES)
        )
    path = folder / f"{split}_label_map.json"
    return read_label_map(path if path.exists() else None)


def load_split(
    images: Location,
    annotations: Location,
    *,
    split: str,
    num_classes: int,
    label_map: LabelMap,
    attribute_names: list[str] | None = None,
) -> tuple[Split, list[str]]:
    """The pairs of `images` (a folder, a manifest, or a folder holding one) and `annotations`,
    checked; problems are returned, not raised, so that both splits report at once."""
    manifest = images if is_file(images) else _manifest_in(images)
    if manifest is not None:
        pairs, problems = manifest_pairs(manifest, attribute_names), []
    else:
        pairs, problems = pair_folders(images, annotations)
    found, sizes = check_pairs(pairs, lut=label_map.table(), num_classes=num_classes)
    if not pairs and not problems:
        problems.append(f"{images}: no image/annotation pairs")
    return Split(split, pairs, sizes, label_map), problems + found


def load_splits(root: Path, *, num_classes: int, configs: dict, names=("train", "validation")):
    """Both splits of a data root holding `<split>/`, `<split>_annotation/` (or a manifest in
    `<split>/`) and an optional `label_map/`; every problem of both in one LayoutError. A
    channel in Pipe input mode is read where it lies instead (its inputdataconfig `Uri`)."""

    def location(channel: str) -> Location:
        return pipe_uri(configs.get(channel, {})) or root / channel

    splits, problems = [], []
    for name in names:
        split, found = load_split(
            location(name),
            location(f"{name}_annotation"),
            split=name,
            num_classes=num_classes,
            label_map=label_map_of(root / "label_map", name),
            attribute_names=configs.get(name, {}).get("AttributeNames"),
        )
        splits.append(split)
        problems += found
    raise_problems(str(root), problems)
    return splits
