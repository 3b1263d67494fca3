"""Labelled images from a training channel: RecordIO, images + `.lst`, or augmented manifests.

Every label is checked against num_classes (and single- or multi-label) before training starts;
a problem names the file and the byte offset or line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from tasks.data.lst_validation import validate_lst
from tasks.data.manifest import (
    DEFAULT_ATTRIBUTES,
    MANIFEST_SUFFIXES,
    check_manifest,
    label_format_of,
    manifest_paths,
)
from tasks.data.recordio import RecordIOReader, read_index, unpack
from tasks.errors import InputError
from tasks.staging import read_file


class ChannelError(InputError):
    """A channel whose content the algorithm cannot use."""


@dataclass(frozen=True)
class LabelledImages:
    """Where each image's bytes are and its label: int32 [N] or multi-hot float32 [N, classes]."""

    source: str
    names: list[str]
    labels: np.ndarray
    paths: list[str] | None = None
    """Local file paths or s3:// URIs (image formats)."""
    rec_path: Path | None = None
    offsets: np.ndarray | None = None
    """Record offsets (RecordIO)."""

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, items: range) -> LabelledImages:
        """These images only (a training worker's share)."""
        if items == range(len(self)):
            return self
        return replace(
            self,
            names=self.names[items.start : items.stop],
            labels=self.labels[items.start : items.stop],
            paths=None if self.paths is None else self.paths[items.start : items.stop],
            offsets=None if self.offsets is None else self.offsets[items.start : items.stop],
        )

    @property
    def multi_label(self) -> bool:
        return self.labels.ndim == 2

    def read(self, i: int, reader: RecordIOReader | None = None) -> bytes:
        """The encoded image `i` (pass an open reader to avoid reopening a `.rec`)."""
        if self.paths is not None:
            return read_file(self.paths[i])
        if reader is None:
            with RecordIOReader(self.rec_path) as own:
                return unpack(own.read_at(int(self.offsets[i])).payload)[1]
        return unpack(reader.read_at(int(self.offsets[i])).payload)[1]


def check_labels(
    labels: Sequence[tuple[float, ...]],
    where: Sequence[str],
    *,
    num_classes: int,
    multi_label: bool,
) -> np.ndarray:
    """Labels as an array; the first bad one raises ChannelError naming its place."""
    for label, place in zip(labels, where, strict=True):
        if multi_label:
            if len(label) != num_classes or any(v not in (0.0, 1.0) for v in label):
                raise ChannelError(
                    f"{place}: label {list(label)}; multi-label training needs a multi-hot "
                    f"vector of {num_classes} values 0 or 1 (num_classes={num_classes})"
                )
        elif len(label) != 1 or label[0] != int(label[0]) or not 0 <= label[0] < num_classes:
            shown = f"{label[0]:g}" if len(label) == 1 else str(list(label))
            raise ChannelError(
                f"{place}: label {shown}; allowed: one class index 0..{num_classes - 1} "
                f"(num_classes={num_classes})"
                + ("; several labels need multi_label=1" if len(label) > 1 else "")
            )
    if multi_label:
        return np.asarray(labels, np.float32).reshape(len(labels), num_classes)
    return np.asarray([int(label[0]) for label in labels], np.int32)


def from_recordio(
    rec: Path, idx: Path | None, *, num_classes: int, multi_label: bool
) -> LabelledImages:
    offsets, labels, where, names = [], [], [], []
    with RecordIOReader(rec) as reader:
        records = (reader.read_at(o) for o in read_index(idx).values()) if idx else iter(reader)
        for record in records:
            place = f"{rec} at byte offset {record.offset}"
            header, _ = unpack(record.payload, where=place)
            offsets.append(record.offset)
            labels.append(header.label)
            where.append(f"{place} (record {header.id})")
            names.append(f"{rec.name}#{header.id}")
    if not offsets:
        raise ChannelError(f"{rec}: holds no records")
    return LabelledImages(
        str(rec),
        names,
        check_labels(labels, where, num_classes=num_classes, multi_label=multi_label),
        rec_path=rec,
        offsets=np.asarray(offsets, np.int64),
    )


def from_lst(lst: Path, image_root: Path, *, num_classes: int, multi_label: bool) -> LabelledImages:
    entries = validate_lst(
        lst, num_classes=None if multi_label else num_classes, image_root=image_root
    )
    labels = check_labels(
        [e.labels for e in entries],
        [f"{lst}, line {e.line}" for e in entries],
        num_classes=num_classes,
        multi_label=multi_label,
    )
    return LabelledImages(
        str(lst),
        [e.path for e in entries],
        labels,
        paths=[str(image_root / e.path) for e in entries],
    )


def from_manifest(
    manifest: Path,
    *,
    attribute_names: Sequence[str] = DEFAULT_ATTRIBUTES,
    label_format: str | None = None,
    num_classes: int,
    multi_label: bool,
) -> LabelledImages:
    records = check_manifest(
        manifest,
        attribute_names=attribute_names,
        multi_label=multi_label,
        label_format=label_format or "multi-hot",
        num_classes=num_classes,
    )
    labels = check_labels(
        [r.label for r in records],
        [f"{manifest}, line {r.line}" for r in records],
        num_classes=num_classes,
        multi_label=multi_label,
    )
    return LabelledImages(
        str(manifest), [r.ref for r in records], labels, paths=manifest_paths(manifest, records)
    )


def _only(folder: Path, channel: str, suffixes: Sequence[str]) -> Path:
    if not folder.is_dir():
        raise ChannelError(f"channel {channel!r}: folder {folder} does not exist")
    found = sorted(p for p in folder.rglob("*") if p.suffix.lower() in suffixes and p.is_file())
    if len(found) != 1:
        raise ChannelError(
            f"channel {channel!r}: expected exactly one {' or '.join(suffixes)} "
            f"file in {folder}, found {', '.join(p.name for p in found) or 'none'}"
        )
    return found[0]


def load_channel(
    channel_dir: Path,
    channel: str,
    *,
    config: dict,
    num_classes: int,
    multi_label: bool,
    lst_dir: Path | None = None,
) -> LabelledImages:
    """The channel's images by its content: manifests, `application/x-image` with a `.lst`
    channel, or RecordIO (the default)."""
    content_type = str(config.get("ContentType", ""))
    if channel_dir.is_dir() and any(p.suffix in MANIFEST_SUFFIXES for p in channel_dir.iterdir()):
        label_format = label_format_of(content_type) if content_type else None
        return from_manifest(
            _only(channel_dir, channel, MANIFEST_SUFFIXES),
            attribute_names=config.get("AttributeNames") or DEFAULT_ATTRIBUTES,
            label_format=label_format,
            num_classes=num_classes,
            multi_label=multi_label or label_format is not None,
        )
    if content_type.startswith(("application/x-image", "image/")):
        if lst_dir is None or not lst_dir.exists():
            raise ChannelError(
                f"channel {channel!r} holds images ({content_type}): the "
                f"{channel}_lst channel with one .lst file is required"
            )
        return from_lst(
            _only(lst_dir, f"{channel}_lst", (".lst",)),
            channel_dir,
            num_classes=num_classes,
            multi_label=multi_label,
        )
    rec = _only(channel_dir, channel, (".rec",))
    idx = rec.with_suffix(".idx")
    return from_recordio(
        rec, idx if idx.is_file() else None, num_classes=num_classes, multi_label=multi_label
    )
