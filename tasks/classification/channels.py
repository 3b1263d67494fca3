"""Labelled images from a training channel: RecordIO, images + `.lst`, or augmented manifests.

Every label is checked against num_classes (and single- or multi-label) before training starts;
a problem names the file and the byte offset or line.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from tasks.data.augmented_manifest import (
    DEFAULT_ATTRIBUTES,
    MANIFEST_SUFFIXES,
    check_manifest,
    label_format_of,
    manifest_paths,
)
from tasks.data.lst_validation import validate_lst
from tasks.data.recordio_format import RecordIOReader, read_index, unpack
from tasks.errors import InputError
from tasks.staging import read_file
from tasks.streaming import Location, files_under, name_of, pipe_uri


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
    rec_path: Location | None = None
    offsets: np.ndarray | None = None
    """Record offsets (RecordIO)."""
    streamed: bool = False
    """Read in order where it lies (Pipe input mode), not at random from a staged copy."""

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
        elif (
            len(label) != 1
            or not math.isfinite(label[0])
            or label[0] != int(label[0])
            or not 0 <= label[0] < num_classes
        ):
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
    rec: Location, idx: Location | None, *, num_classes: int, multi_label: bool, streamed=False
) -> LabelledImages:
    """Every record's offset and label, checked; streamed, the records are read in file order."""
    offsets, labels, where, names = [], [], [], []
    with RecordIOReader(rec) as reader:
        records = (reader.read_at(o) for o in read_index(idx).values()) if idx else iter(reader)
        for record in records:
            place = f"{rec} at byte offset {record.offset}"
            header, _ = unpack(record.payload, where=place)
            offsets.append(record.offset)
            labels.append(header.label)
            where.append(f"{place} (record {header.id})")
            names.append(f"{name_of(rec)}#{header.id}")
    if not offsets:
        raise ChannelError(f"{rec}: holds no records")
    return LabelledImages(
        str(rec),
        names,
        check_labels(labels, where, num_classes=num_classes, multi_label=multi_label),
        rec_path=rec,
        offsets=np.asarray(offsets, np.int64),
        streamed=streamed,
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
    manifest: Location,
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


def _only(location: Location, channel: str, suffixes: Sequence[str], files=None) -> Location:
    """The one file of `location` with one of `suffixes` (`files`: its listing, when made)."""
    if isinstance(location, Path) and not location.is_dir():
        raise ChannelError(f"channel {channel!r}: folder {location} does not exist")
    files = files_under(location) if files is None else files
    found = [f for f in files if Path(name_of(f)).suffix.lower() in suffixes]
    if len(found) != 1:
        raise ChannelError(
            f"channel {channel!r}: expected exactly one {' or '.join(suffixes)} "
            f"file in {location}, found {', '.join(name_of(p) for p in found) or 'none'}"
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
    channel, or RecordIO (the default); staged in `channel_dir`, or streamed from where they lie
    (Pipe input mode: RecordIO and manifests)."""
    content_type = str(config.get("ContentType", ""))
    streamed = pipe_uri(config)
    location: Location = streamed or channel_dir
    # Listed once: in object storage each listing is a request.
    files = files_under(location) if streamed or channel_dir.is_dir() else []
    if any(Path(name_of(f)).suffix in MANIFEST_SUFFIXES for f in files):
        label_format = label_format_of(content_type) if content_type else None
        return from_manifest(
            _only(location, channel, MANIFEST_SUFFIXES, files),
            attribute_names=config.get("AttributeNames") or DEFAULT_ATTRIBUTES,
            label_format=label_format,
            num_classes=num_classes,
            multi_label=multi_label or label_format is not None,
        )
    if content_type.startswith(("application/x-image", "image/")):
        if streamed:
            raise ChannelError(
                f"channel {channel!r} holds images ({content_type}): Pipe input mode streams "
                "RecordIO or an augmented manifest; use File input mode for images with a .lst"
            )
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
    rec = _only(location, channel, (".rec",), files or None)
    if streamed:  # in file order: an index would only add a read
        return from_recordio(
            rec, None, num_classes=num_classes, multi_label=multi_label, streamed=True
        )
    idx = rec.with_suffix(".idx")
    return from_recordio(
        rec, idx if idx.is_file() else None, num_classes=num_classes, multi_label=multi_label
    )
