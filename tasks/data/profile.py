"""A run's data profile: one row per image with what a data team validates (split, label,
source-ref, width, height, mode, encoded bytes; for segmentation the classes present and their
pixel share), written by the data-prep steps from what they read anyway, as gzip'd CSV
(`profile.csv.gz`, read by the data-quality step with pandas).

Great Expectations validates it (tasks/quality/); each data-prep step writes the part of the
data it prepared, and the quality step reads all parts.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

PROFILE = "profile.csv.gz"
COLUMNS = (
    "split",
    "label",
    "source_ref",
    "width",
    "height",
    "mode",
    "bytes",
    "classes",
    "pixel_share",
)
"""`label`: the class index (the first label of a multi-label image; segmentation: the class
with the largest pixel share, background included); `classes`: the class indices present,
space-separated; `pixel_share`: `class:share` pairs (segmentation only)."""


def profile_beside(folder_uri: str) -> str:
    """Where a data-prep step that fills a channel folder puts its part of the profile: beside
    the folder (`<folder>.profile.csv.gz`), as the folder holds only what the channel reads."""
    return f"{folder_uri.rstrip('/')}.{PROFILE}"


@dataclass(frozen=True)
class ImageFacts:
    """What decoding an image's header told us."""

    width: int
    height: int
    mode: str
    bytes: int


@dataclass(frozen=True)
class ProfileRow:
    split: str
    label: int
    source_ref: str
    facts: ImageFacts
    pixel_share: Mapping[int, float] | None = None

    def values(self) -> list[str | int]:
        share = self.pixel_share or {}
        return [
            self.split,
            self.label,
            self.source_ref,
            self.facts.width,
            self.facts.height,
            self.facts.mode,
            self.facts.bytes,
            " ".join(str(c) for c in sorted(share)) if share else str(self.label),
            " ".join(f"{c}:{s:.4f}" for c, s in sorted(share.items())),
        ]


def profile_bytes(rows: Iterable[ProfileRow]) -> bytes:
    """The profile file's content (gzip'd CSV with a header row)."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(row.values() for row in rows)
    # mtime 0: the same rows give the same bytes (reruns and the data fingerprint).
    return gzip.compress(text.getvalue().encode("utf-8"), mtime=0)


def write_profile(path: Path, rows: Iterable[ProfileRow]) -> Path:
    """Write the rows to `path` (a local file, uploaded by the step that made it)."""
    path.write_bytes(profile_bytes(rows))
    return path
