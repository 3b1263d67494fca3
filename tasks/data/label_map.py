"""Segmentation label maps (formats.md): encoded annotation pixel values -> class indices.

`{"scale": "k"}` gives class floor(value / k) (k = 1, the default, is the identity);
`{"map": {"<class>": <value>, ...}}` names the encoded value of each class. 255 is "ignore" and
stays 255. Remapping rewrites annotation PNGs to class indices, keeping mode P (and its palette)
or L, and reports pixel values the map does not cover.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from tasks.atomic import atomic_path
from tasks.data.profile import ImageFacts, ProfileRow
from tasks.errors import InputError
from tasks.problems import Problem, describe

IGNORE = 255
UNCOVERED = -1


class LabelMapError(InputError):
    """A label map or annotation that cannot be used; the message names the file."""


@dataclass(frozen=True)
class LabelMap:
    """Exactly one of `scale` (pixel // scale) or `mapping` (class index -> encoded value)."""

    scale: int = 1
    mapping: tuple[tuple[int, int], ...] | None = None

    def table(self) -> np.ndarray:
        """A 256-entry lookup: encoded value -> class index, UNCOVERED where not mapped."""
        lut = np.full(256, UNCOVERED, dtype=np.int16)
        if self.mapping is None:
            lut[:] = np.arange(256) // self.scale
        else:
            for cls, value in self.mapping:
                lut[value] = cls
        lut[IGNORE] = IGNORE
        return lut

    def encoding(self) -> np.ndarray:
        """The inverse, a 256-entry lookup: class index -> encoded value (255 where none)."""
        values = np.full(256, IGNORE, dtype=np.uint8)
        if self.mapping is None:
            classes = np.arange(256 // self.scale)
            values[classes] = classes * self.scale
        else:
            for cls, value in self.mapping:
                values[cls] = value
        values[IGNORE] = IGNORE
        return values

    def to_json(self) -> dict:
        """The label map as its file holds it."""
        if self.mapping is None:
            return {"scale": str(self.scale)}
        return {"map": {str(cls): value for cls, value in self.mapping}}


def parse_label_map(text: str, *, source: str) -> LabelMap:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise LabelMapError(f"{source}: not valid JSON (line {e.lineno}: {e.msg})") from e
    if not isinstance(obj, dict) or len(obj) != 1 or not set(obj) <= {"scale", "map"}:
        raise LabelMapError(
            f'{source}: expected {{"scale": "k"}} or {{"map": {{"<class>": <value>}}}}, '
            f"got {text.strip()[:80]!r}"
        )
    if "scale" in obj:
        try:
            scale = int(str(obj["scale"]))
        except ValueError as e:
            raise LabelMapError(
                f"{source}: scale must be a positive integer, got {obj['scale']!r}"
            ) from e
        if not 1 <= scale <= 255:
            raise LabelMapError(f"{source}: scale must be in 1..255, got {scale}")
        return LabelMap(scale=scale)
    mapping = obj["map"]
    if not isinstance(mapping, dict) or not mapping:
        raise LabelMapError(f"{source}: map must be a non-empty object of class -> value")
    pairs = []
    for key, value in mapping.items():
        try:
            cls, encoded = int(key), int(str(value))
        except ValueError as e:
            raise LabelMapError(
                f"{source}: map entry {key!r}: {value!r} is not class index -> pixel value"
            ) from e
        if not 0 <= cls <= 253 or not 0 <= encoded <= 254:
            raise LabelMapError(
                f"{source}: map entry {key!r}: {value!r}: classes must be in "
                "0..253 and pixel values in 0..254 (255 is ignore)"
            )
        pairs.append((cls, encoded))
    values = [v for _, v in pairs]
    if len(set(values)) != len(values):
        raise LabelMapError(f"{source}: map gives the same pixel value to two classes")
    return LabelMap(mapping=tuple(sorted(pairs)))


def read_label_map(path: str | os.PathLike | None) -> LabelMap:
    """The label map in `path`; no file means the identity."""
    if path is None:
        return LabelMap()
    return parse_label_map(Path(path).read_text(encoding="utf-8"), source=str(path))


def remap_annotation(
    src: Path, dst: Path, lut: np.ndarray, num_classes: int | None, split: str = ""
) -> tuple[list[int], ProfileRow]:
    """Write `src` with class indices to `dst` (atomically); return the pixel values not
    covered and the annotation's profile row (its classes' pixel shares, 255 left out)."""
    try:
        with Image.open(src) as img:
            img.load()
    except (OSError, UnidentifiedImageError) as e:
        raise LabelMapError(f"{src}: cannot read annotation: {e}") from e
    if img.mode not in ("P", "L"):
        raise LabelMapError(
            f"{src}: annotation mode {img.mode} is not a single-channel 8-bit PNG (mode P or L)"
        )
    pixels = np.asarray(img)
    classes = lut[pixels]
    bad = classes == UNCOVERED
    if num_classes is not None:
        bad |= (classes >= num_classes) & (classes != IGNORE)
    uncovered = sorted(int(v) for v in np.unique(pixels[bad]))
    out = Image.fromarray(np.where(bad, IGNORE, classes).astype(np.uint8), mode="L")
    if img.mode == "P":
        out = out.convert("P")
        out.putpalette(img.getpalette() or [])
    with atomic_path(dst) as tmp:
        out.save(tmp, format="PNG")
    values, counts = np.unique(classes[~bad & (classes != IGNORE)], return_counts=True)
    share = {
        int(v): float(c) / max(int(counts.sum()), 1) for v, c in zip(values, counts, strict=True)
    }
    facts = ImageFacts(img.width, img.height, img.mode, src.stat().st_size)
    label = max(share, key=share.get) if share else IGNORE
    return uncovered, ProfileRow(split, label, src.name, facts, share)


def remap_folder(
    src_dir: Path,
    dst_dir: Path,
    label_map: LabelMap,
    num_classes: int | None = None,
    split: str = "",
) -> list[ProfileRow]:
    """Remap every PNG of `src_dir` into `dst_dir`; all uncovered values reported at the end.
    Returns the annotations' profile rows (of `split`)."""
    lut = label_map.table()
    problems, rows = [], []
    files = sorted(p for p in src_dir.iterdir() if p.suffix.lower() == ".png")
    if not files:
        raise LabelMapError(f"{src_dir}: no .png annotations")
    for src in files:
        uncovered, row = remap_annotation(src, dst_dir / src.name, lut, num_classes, split)
        rows.append(row)
        if uncovered:
            problems.append(
                Problem(
                    0,
                    f"{src.name}: pixel values {uncovered[:10]} are not "
                    "covered by the label map (written as 255, ignore)",
                )
            )
    if problems:
        raise LabelMapError(describe(str(src_dir), problems))
    return rows
