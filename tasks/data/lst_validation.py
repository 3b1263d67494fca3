"""Check a `.lst` completely before anything is packed or trained, reporting every problem."""

from __future__ import annotations

import math
import os
import struct
import warnings
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

from PIL import Image, UnidentifiedImageError

from tasks.data.lst import LstEntry
from tasks.data.profile import ImageFacts
from tasks.errors import InputError
from tasks.limits import MAX_IMAGE_PIXELS  # noqa: F401 - sets Pillow's threshold
from tasks.problems import Problem, describe

DECODE_ERRORS = (
    OSError,
    UnidentifiedImageError,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
)
"""What Pillow raises (or warns, as an error) for a file that is not a decodable image."""


class LstValidationError(InputError):
    """A `.lst` with problems; the message lists the first ones with their line numbers."""


def inspect_image(path: Path) -> ImageFacts | str:
    """What the image at `path` is (size, mode, encoded bytes), or why it cannot be used
    (missing, or does not decode)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                mode = img.mode
                img.draft(img.mode, (64, 64))  # a JPEG decodes at 1/8 scale: enough to prove it
                img.load()
        size = path.stat().st_size
    except FileNotFoundError:
        return f"image {path} not found"
    except DECODE_ERRORS as e:
        return f"image {path} does not decode: {e}"
    return ImageFacts(width, height, mode, size)


def inspect_images(paths: Iterable[Path], *, workers: int = 8) -> list[ImageFacts | str]:
    """inspect_image of every path, in order."""
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(inspect_image, paths))


def image_problem(path: Path) -> str | None:
    """Why the image at `path` cannot be used (missing, or does not decode), or None."""
    found = inspect_image(path)
    return found if isinstance(found, str) else None


def _parse_line(raw: bytes, line_no: int, problems: list[Problem]) -> LstEntry | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        problems.append(Problem(line_no, f"not UTF-8 (byte {e.start} of the line): {raw[:80]!r}"))
        return None
    fields = [f.strip() for f in text.rstrip("\r\n").split("\t")]
    if len(fields) < 3:
        problems.append(
            Problem(
                line_no,
                f"expected index, label(s) and path separated by tabs, got {len(fields)} "
                f"column(s): {text.strip()!r}",
            )
        )
        return None
    try:
        index = int(fields[0])
    except ValueError:
        problems.append(Problem(line_no, f"index must be an integer, got {fields[0]!r}"))
        return None
    try:
        labels = tuple(float(v) for v in fields[1:-1])
    except ValueError:
        problems.append(Problem(line_no, f"labels must be numbers, got {fields[1:-1]!r}"))
        return None
    if not all(_is_float32(label) for label in labels):
        problems.append(
            Problem(
                line_no,
                f"labels must be finite numbers that a 32-bit float holds (RecordIO stores them "
                f"so: at most 3.4e38 either way), got {fields[1:-1]!r}",
            )
        )
        return None
    return LstEntry(index, labels, fields[-1], line_no)


def _is_float32(value: float) -> bool:
    try:
        struct.pack("<f", value)
    except OverflowError:
        return False
    return math.isfinite(value)


def validate_lst(
    path: str | os.PathLike,
    *,
    num_classes: int | None = None,
    image_root: str | os.PathLike | None = None,
    check_images: bool = False,
    workers: int = 8,
) -> list[LstEntry]:
    """The entries of a valid `.lst`; otherwise LstValidationError listing every problem.

    Checks: column counts, unique integer indices, numeric labels, class labels integral and in
    [0, num_classes) when known, else classes consecutive from 0 (single-label lists),
    relative paths inside the root, and with `image_root` that files exist (and decode, with
    `check_images`)."""
    path = Path(path)
    problems: list[Problem] = []
    entries: list[LstEntry] = []
    first_line: dict[int, int] = {}
    columns: int | None = None
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            entry = _parse_line(raw, line_no, problems)
            if entry is None:
                continue
            width = len(entry.labels) + 2
            columns = columns or width
            if width != columns:
                problems.append(
                    Problem(line_no, f"{width} columns, but earlier lines have {columns}")
                )
            if entry.index in first_line:
                problems.append(
                    Problem(
                        line_no,
                        f"index {entry.index} already used on line {first_line[entry.index]}",
                    )
                )
            first_line.setdefault(entry.index, line_no)
            rel = PurePosixPath(entry.path)
            if rel.is_absolute() or ".." in rel.parts or os.path.isabs(entry.path):
                problems.append(
                    Problem(
                        line_no,
                        f"path {entry.path!r} must be relative to the image root, without '..'",
                    )
                )
                continue
            if len(entry.labels) == 1:
                label = entry.labels[0]
                if label != int(label) or label < 0 or (num_classes and label >= num_classes):
                    allowed = f"0..{num_classes - 1}" if num_classes else "integers from 0"
                    problems.append(
                        Problem(
                            line_no, f"label {label:g} is not a class index; allowed: {allowed}"
                        )
                    )
            entries.append(entry)
    if not entries and not problems:
        problems.append(Problem(0, "the list is empty"))
    single = [int(e.labels[0]) for e in entries if len(e.labels) == 1]
    # Where num_classes is given, a class without images is legitimate (a small split of a
    # dataset); where the list alone defines the classes, a gap means a mislabelled list.
    if num_classes is None and single and len(single) == len(entries):
        missing = sorted(set(range(max(single) + 1)) - set(single))
        if missing:
            problems.append(
                Problem(
                    0,
                    "classes must be consecutive from 0; no line has label "
                    + ", ".join(map(str, missing[:10]))
                    + (" ..." if len(missing) > 10 else ""),
                )
            )
    if image_root is not None and entries:
        problems += image_problems(entries, image_root, decode=check_images, workers=workers)
    if problems:
        problems.sort(key=lambda p: p.line)
        raise LstValidationError(describe(str(path), problems))
    return entries


def image_problems(
    entries: list[LstEntry], image_root: str | os.PathLike, *, decode: bool, workers: int = 8
) -> list[Problem]:
    """A problem per entry whose image under `image_root` is missing (or, with `decode`, does
    not decode)."""
    root = Path(image_root)
    if not decode:
        return [
            Problem(e.line, f"image {root / e.path} not found")
            for e in entries
            if not (root / e.path).is_file()
        ]
    return entry_problems(
        entries, inspect_images((root / e.path for e in entries), workers=workers)
    )


def entry_problems(entries: list[LstEntry], found: list[ImageFacts | str]) -> list[Problem]:
    """A problem, at its list line, per entry whose image inspect_images could not use."""
    return [Problem(e.line, f) for e, f in zip(entries, found, strict=True) if isinstance(f, str)]
