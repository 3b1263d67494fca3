"""What a data-prep step's input must look like, checked cheaply before a run is made: a few
bounded listings, no image opened (the step itself checks every file). A location that exists
but holds something else (`file:///etc`, a folder of loose images) is refused in one sentence
instead of starting a run that walks it."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import islice
from typing import Any

from tasks.data.augmented_manifest import MANIFEST_SUFFIXES
from tasks.data.lst import IMAGE_EXTENSIONS

MAX_LISTED = 200
"""Entries looked at in one folder: enough to find a class folder, bounded on a huge tree."""
SEGMENTATION_FOLDERS = ("train", "train_annotation", "validation", "validation_annotation")


@dataclass(frozen=True)
class Input:
    """A data-prep step's input: what it may hold in words, and its layout's name (LAYOUTS)."""

    may_hold: str
    layout: str | None = None


def _entries(folder: Any) -> list[Any]:
    return list(islice(folder.iterdir(), MAX_LISTED))


def _holds_an_image(folder: Any) -> bool:
    return any(e.suffix.lower() in IMAGE_EXTENSIONS and e.is_file() for e in _entries(folder))


def class_folders(path: Any) -> str | None:
    if not path.is_dir():
        return "is not a folder"
    if any(e.is_dir() and _holds_an_image(e) for e in _entries(path)):
        return None
    return "holds no class folder with images"


def class_folders_or_manifest(path: Any) -> str | None:
    if path.is_file():
        return None if path.suffix in MANIFEST_SUFFIXES else "is a file but not a manifest"
    return class_folders(path)


def segmentation(path: Any) -> str | None:
    if not path.is_dir():
        return "is not a folder"
    missing = [name for name in SEGMENTATION_FOLDERS if not (path / name).is_dir()]
    return f"has no {missing[0]}/ folder" if missing else None


def a_file(path: Any) -> str | None:
    return None if path.is_file() else "is not a file"


LAYOUTS = {
    "class-folders": class_folders,
    "class-folders-or-manifest": class_folders_or_manifest,
    "segmentation": segmentation,
    "file": a_file,
}
"""Layout name -> why an existing location (a pathlib or ObjectStoragePath) is not of it."""


def layout_refusal(path: Any, layout: str | None) -> str | None:
    """Why the existing `path` is not of `layout` (a clause: "holds no class folder with
    images"); None when it may be, or no layout is named."""
    return LAYOUTS[layout](path) if layout else None
