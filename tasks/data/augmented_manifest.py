"""Augmented manifests (JSON Lines): parsing and checks, per formats.md, and conversion to `.lst`.

The job names the attributes to read (`AttributeNames`): the image reference first (`source-ref`,
or for segmentation any `*-ref`), then the label (classification) or annotation reference.
Labels: a class index ("0"), or for multi-label a multi-hot vector ("[1, 0, 1]") or class ids
("[0, 2]"), chosen by the content type's `label-format`.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO
from urllib.parse import urlparse

from tasks.data.lst import LstEntry
from tasks.errors import InputError
from tasks.limits import MAX_CLASSES, MAX_MANIFEST_LINE_BYTES
from tasks.problems import Problem, describe
from tasks.streaming import Location, open_input, parent_of
from tasks.uris import check_uri

DEFAULT_ATTRIBUTES = ("source-ref", "class")
MANIFEST_SUFFIXES = (".manifest", ".jsonl")
LABEL_FORMATS = ("multi-hot", "class-id")


class ManifestError(InputError):
    """A manifest with problems; the message lists the first ones with their line numbers."""


def label_format_of(content_type: str) -> str | None:
    """`application/x-recordio; label-format=class-id` -> `class-id`; None without the parameter
    (single-label). A label-format marks a multi-label manifest."""
    for part in content_type.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.strip().lower() == "label-format":
            value = value.strip().strip('"').lower()
            if value not in LABEL_FORMATS:
                raise ManifestError(
                    f"content type {content_type!r}: label-format must be one of "
                    f"{', '.join(LABEL_FORMATS)}, got {value!r}"
                )
            return value
    return None


def parse_options(
    *,
    attribute_names: Sequence[str],
    content_type: str,
    num_classes: int | None,
    segmentation: bool = False,
) -> dict:
    """iter_manifest's options for a channel's AttributeNames and content type."""
    label_format = label_format_of(content_type)
    return {
        "attribute_names": attribute_names,
        "segmentation": segmentation,
        "multi_label": label_format is not None,
        "label_format": label_format or LABEL_FORMATS[0],
        "num_classes": num_classes,
    }


@dataclass(frozen=True)
class ManifestRecord:
    line: int
    ref: str
    """The image reference: s3://, file:// or a path relative to the manifest."""
    label: tuple[float, ...] | None = None
    """Class index (one value) or multi-hot vector; None for segmentation records."""
    annotation_ref: str | None = None


def _parse_label(
    value: object, *, multi_label: bool, label_format: str, num_classes: int | None
) -> tuple[float, ...]:
    """The label as a tuple (one class index, or a multi-hot vector); ValueError says why."""
    if isinstance(value, str):
        text = value.strip()
        value = json.loads(text) if text.startswith("[") else text
    if not multi_label:
        if isinstance(value, bool | list):
            raise ValueError("expected one class index")
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number) or number != int(number) or number < 0:
            raise ValueError("a class index must be a whole number from 0")
        if number >= MAX_CLASSES:
            raise ValueError(
                f"a class index must be below {MAX_CLASSES} (VISION_PIPELINES_MAX_CLASSES)"
            )
        return (number,)
    if isinstance(value, list) and len(value) > MAX_CLASSES:
        raise ValueError(
            f"{len(value)} values; at most {MAX_CLASSES} classes (VISION_PIPELINES_MAX_CLASSES)"
        )
    if not isinstance(value, list) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
    ):
        raise ValueError(f"expected a list of numbers for label-format={label_format}")
    if label_format == "class-id":
        if not all(math.isfinite(v) for v in value):
            raise ValueError("class ids must be distinct whole numbers")
        ids = [int(v) for v in value]
        if any(v != i for v, i in zip(value, ids, strict=True)) or len(set(ids)) != len(ids):
            raise ValueError("class ids must be distinct whole numbers")
        if num_classes is None:
            raise ValueError("class-id labels need num_classes")
        bad = [i for i in ids if not 0 <= i < num_classes]
        if bad:
            raise ValueError(f"class id {bad[0]} is outside 0..{num_classes - 1}")
        return tuple(1.0 if i in ids else 0.0 for i in range(num_classes))
    if num_classes is not None and len(value) != num_classes:
        raise ValueError(f"a multi-hot vector needs {num_classes} values, got {len(value)}")
    if any(v not in (0, 1) for v in value):
        raise ValueError("multi-hot values must be 0 or 1")
    return tuple(float(v) for v in value)


def bounded_lines(f: BinaryIO, limit: int | None = None) -> Iterator[bytes | None]:
    """The lines of `f`, each read with at most `limit` bytes in memory; None in place of a
    longer one (the rest of it is skipped without being kept)."""
    limit = limit or MAX_MANIFEST_LINE_BYTES
    while raw := f.readline(limit + 1):
        if len(raw) <= limit or raw.endswith(b"\n") and len(raw) == limit + 1:
            yield raw
            continue
        while raw and not raw.endswith(b"\n"):
            raw = f.readline(limit + 1)
        yield None


def iter_manifest(
    path: str | os.PathLike,
    *,
    attribute_names: Sequence[str] = DEFAULT_ATTRIBUTES,
    segmentation: bool = False,
    multi_label: bool = False,
    label_format: str = LABEL_FORMATS[0],
    num_classes: int | None = None,
) -> Iterator[ManifestRecord | Problem]:
    """Parse line by line: a record per good line, a problem per bad one (none raised)."""
    if len(attribute_names) not in (1, 2):
        raise ManifestError(
            f"AttributeNames must name the image reference, then the "
            f"{'annotation reference' if segmentation else 'label'}; got {list(attribute_names)}"
        )
    ref_key, second = attribute_names[0], attribute_names[-1]
    labelled = len(attribute_names) == 2
    if (ref_key != "source-ref" and not segmentation) or not ref_key.endswith("-ref"):
        raise ManifestError(
            f"AttributeNames[0] must be the image reference ('source-ref'"
            f"{' or any *-ref' if segmentation else ''}), got {ref_key!r}"
        )
    empty = True
    with open_input(path) as f:
        for line_no, raw in enumerate(bounded_lines(f), start=1):
            if raw is None:
                yield Problem(
                    line_no,
                    f"the line is longer than {MAX_MANIFEST_LINE_BYTES} bytes "
                    "(VISION_PIPELINES_MAX_MANIFEST_LINE_BYTES); one record is one short line",
                )
                continue
            if not raw.strip():
                continue
            empty = False
            try:
                obj = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                yield Problem(line_no, f"not a JSON object ({e})")
                continue
            except ValueError:  # Python refuses to convert integers of over 4300 digits
                yield Problem(line_no, "a number of more than 4300 digits; labels are class ids")
                continue
            if not isinstance(obj, dict):
                yield Problem(line_no, f"expected a JSON object, got {raw[:60]!r}")
                continue
            missing = [k for k in attribute_names if k not in obj]
            if missing:
                yield Problem(
                    line_no,
                    f"missing attribute(s) {', '.join(missing)}; "
                    f"the line has {', '.join(obj) or 'none'}",
                )
                continue
            ref = obj[ref_key]
            if not isinstance(ref, str) or not ref:
                yield Problem(line_no, f"{ref_key} must be a non-empty string")
                continue
            if not labelled:  # inference inputs: images only
                yield ManifestRecord(line_no, ref)
                continue
            if segmentation:
                yield ManifestRecord(line_no, ref, annotation_ref=str(obj[second]))
                continue
            try:
                label = _parse_label(
                    obj[second],
                    multi_label=multi_label,
                    label_format=label_format,
                    num_classes=num_classes,
                )
            except (ValueError, TypeError, OverflowError) as e:
                shown = json.dumps(obj[second])
                shown = shown if len(shown) <= 80 else f"{shown[:60]}... ({len(shown)} chars)"
                yield Problem(line_no, f"{second} = {shown}: {e}")
                continue
            yield ManifestRecord(line_no, ref, label)
    if empty:
        yield Problem(0, "the manifest holds no records")


def read_manifest(path: str | os.PathLike, **options) -> tuple[list[ManifestRecord], list[Problem]]:
    """Every line of iter_manifest: the good records and a problem per bad line."""
    records: list[ManifestRecord] = []
    problems: list[Problem] = []
    for item in iter_manifest(path, **options):
        (records if isinstance(item, ManifestRecord) else problems).append(item)
    return records, problems


def check_manifest(path: str | os.PathLike, **options) -> list[ManifestRecord]:
    """read_manifest, raising ManifestError with every problem found."""
    records, problems = read_manifest(path, **options)
    if problems:
        raise ManifestError(describe(str(path), problems))
    return records


def resolve_ref(ref: str, manifest_dir: Path, image_root: Path) -> str:
    """The reference as a path relative to `image_root` (for a `.lst`); s3:// refs are expected
    staged under `image_root/<bucket>/<key>`. Anything escaping the root is refused."""
    parsed = urlparse(ref)
    if parsed.scheme == "s3":
        rel = PurePosixPath(parsed.netloc.rpartition("@")[2], parsed.path.lstrip("/"))
        if ".." in rel.parts:
            raise ValueError(f"reference {ref!r} contains '..'")
        return rel.as_posix()
    if parsed.scheme == "file":
        target = Path(parsed.path)
    elif parsed.scheme:
        raise ValueError(
            f"reference {ref!r}: scheme {parsed.scheme}:// is not supported; "
            "use s3://, file:// or a path relative to the manifest"
        )
    else:
        if Path(ref).is_absolute() or ".." in PurePosixPath(ref).parts:
            raise ValueError(
                f"reference {ref!r} must be s3://, file:// or relative to the manifest without '..'"
            )
        target = manifest_dir / ref
    try:
        return Path(os.path.normpath(target)).relative_to(os.path.normpath(image_root)).as_posix()
    except ValueError as e:
        raise ValueError(
            f"reference {ref!r} is outside {image_root}, the folder references may point into"
        ) from e


def to_lst_entries(
    records: Sequence[ManifestRecord], manifest: Path, image_root: Path | None = None
) -> list[LstEntry]:
    """`.lst` entries (index = manifest order) for packing; every bad reference is reported."""
    root = image_root or manifest.parent
    entries, problems = [], []
    for i, record in enumerate(records):
        try:
            path = resolve_ref(record.ref, manifest.parent, root)
        except ValueError as e:
            problems.append(Problem(record.line, str(e)))
            continue
        entries.append(LstEntry(i, record.label or (0.0,), path, record.line))
    if problems:
        raise ManifestError(describe(str(manifest), problems))
    return entries


def manifest_entries(
    records: Sequence[ManifestRecord], manifest: Path, *, manifest_uri: str
) -> tuple[list[LstEntry], list[str]]:
    """`.lst` entries relative to the manifest's folder, and class names (the indices as text).

    References under the manifest's own folder (`s3://b/data/x.jpg` beside
    `s3://b/data/train.manifest`) become relative paths; references elsewhere are refused."""
    folder = manifest_uri.rsplit("/", 1)[0] + "/"
    # An s3:// reference elsewhere would otherwise be read as a path under the manifest's folder.
    outside = [
        Problem(r.line, f"reference {r.ref!r} is outside the manifest's folder {folder}")
        for r in records
        if r.ref.startswith("s3://") and not r.ref.startswith(folder)
    ]
    if outside:
        raise ManifestError(describe(manifest_uri, outside))
    local = [
        ManifestRecord(
            r.line,
            r.ref[len(folder) :] if r.ref.startswith(folder) else r.ref,
            r.label,
            r.annotation_ref,
        )
        for r in records
    ]
    entries = to_lst_entries(local, manifest)
    widths = {len(e.labels) for e in entries}
    if len(widths) > 1:
        first = next(e for e in entries if len(e.labels) != len(entries[0].labels))
        raise ManifestError(
            f"{manifest_uri}, line {first.line}: {len(first.labels)} labels, "
            f"line {entries[0].line} has {len(entries[0].labels)}"
        )
    width = widths.pop()
    count = width if width > 1 else int(max(e.labels[0] for e in entries)) + 1
    return entries, [str(i) for i in range(count)]


def manifest_paths(manifest: Location, records: Sequence[ManifestRecord]) -> list[str]:
    """Readable locations of the records' images, every one checked before any is opened:
    local references only inside the manifest's folder, s3:// ones where the deployment allows
    (tasks.uris), so a manifest cannot make a step read (or probe) any other file. A manifest
    read where it lies in object storage (Pipe input mode) resolves relative references
    against its own folder there."""
    folder = parent_of(manifest)
    paths, problems = [], []
    for r in records:
        try:
            if r.ref.startswith("s3://"):
                paths.append(check_uri(r.ref, "reference"))
            elif isinstance(folder, str):
                if urlparse(r.ref).scheme or ".." in PurePosixPath(r.ref).parts:
                    raise ValueError(
                        f"reference {r.ref!r}: a manifest in object storage refers to s3:// "
                        "objects or to paths relative to its folder without '..'"
                    )
                paths.append(check_uri(f"{folder}/{r.ref.lstrip('/')}", "reference"))
            else:
                paths.append(str(folder / resolve_ref(r.ref, folder, folder)))
        except (ValueError, InputError) as e:
            problems.append(Problem(r.line, str(e)))
    if problems:
        raise ManifestError(describe(str(manifest), problems))
    return paths
