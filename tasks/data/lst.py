"""im2rec `.lst` image lists: `index \\t label [\\t label ...] \\t relative/path` per line."""

from __future__ import annotations

import os
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tasks.errors import InputError
from tasks.uris import walk_files

IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png")


class LstError(InputError):
    """A `.lst` that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class LstEntry:
    index: int
    labels: tuple[float, ...]
    path: str
    line: int = field(default=0, compare=False)
    """Line number in the `.lst` it was read from (0 when generated)."""

    def to_line(self) -> str:
        """The line as im2rec writes it (labels with `%f`)."""
        labels = "".join(f"{label:f}\t" for label in self.labels)
        return f"{self.index}\t{labels}{self.path}\n"


@dataclass(frozen=True)
class ClassFolderListing:
    """Images found under a root, labelled by folder as `im2rec --list --recursive` does."""

    entries: list[LstEntry]
    classes: list[str]


def _has_ext(name: str, exts: tuple[str, ...]) -> bool:
    return os.path.splitext(name)[1].lower() in exts


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes arrive as surrogate escapes
        return False
    return True


def _walk_order(rel_path: str) -> tuple:
    """os.walk's top-down order with sorted folders: a folder's files before its subfolders."""
    *folders, name = rel_path.split("/")
    return (*((1, f) for f in folders), (0, name))


def class_folder_entries(
    rel_paths: Iterable[str], exts: Sequence[str] = IMAGE_EXTENSIONS, *, source: str
) -> ClassFolderListing:
    """im2rec --list --recursive over the files of a root, given as relative posix paths (a
    local walk or an object store's listing): one class per folder, in walk order."""
    wanted = tuple(e.lower() for e in exts)
    classes: dict[str, int] = {}
    entries: list[LstEntry] = []
    for rel_path in sorted((p for p in rel_paths if _has_ext(p, wanted)), key=_walk_order):
        label = classes.setdefault(rel_path.rpartition("/")[0] or ".", len(classes))
        entries.append(LstEntry(len(entries), (float(label),), rel_path))
    if not entries:
        raise LstError(f"{source}: no images with extensions {', '.join(exts)} under this folder")
    unreadable = [e.path for e in entries if not _is_utf8(e.path)]
    if unreadable:
        names = ", ".join(repr(os.fsencode(p)) for p in unreadable[:5])
        raise LstError(
            f"{source}: {len(unreadable)} file or folder name(s) are not valid UTF-8 and cannot "
            f"be written to a .lst: {names}; rename them"
        )
    return ClassFolderListing(entries, list(classes))


def list_class_folders(
    root: str | os.PathLike,
    exts: Sequence[str] = IMAGE_EXTENSIONS,
    *,
    recursive: bool = True,
) -> ClassFolderListing:
    """List images like im2rec --list: recursively one class per folder (sorted walk), else the
    root's own images with label 0."""
    root = Path(root)
    if not root.is_dir():
        raise LstError(f"{root}: image root is not a folder")
    if recursive:
        files = (name for name in walk_files(root, f"image root {root}") if (root / name).is_file())
    else:
        files = (name for name in os.listdir(root) if (root / name).is_file())
    return class_folder_entries(files, exts, source=str(root))


@dataclass(frozen=True)
class SplitLists:
    train: list[LstEntry]
    validation: list[LstEntry]
    test: list[LstEntry]


def split_entries(
    entries: Sequence[LstEntry],
    *,
    train_ratio: float = 1.0,
    test_ratio: float = 0.0,
    shuffle: bool = True,
    seed: int = 100,
    size: int | None = None,
) -> SplitLists:
    """Shuffle and split as im2rec's make_list does: test first, then train, the rest validation.

    `size` is the nominal size the ratios apply to (im2rec uses the chunk size), default all."""
    if not 0.0 <= test_ratio <= 1.0 or not 0.0 < train_ratio <= 1.0:
        raise LstError(
            f"train_ratio must be in (0, 1] and test_ratio in [0, 1], got {train_ratio} and "
            f"{test_ratio}"
        )
    if train_ratio + test_ratio > 1.0:
        raise LstError(
            f"train_ratio + test_ratio must be at most 1, got {train_ratio} + {test_ratio}"
        )
    items = list(entries)
    if shuffle:
        random.Random(seed).shuffle(items)
    size = len(items) if size is None else size
    n_test = int(size * test_ratio)
    n_train = int(size * train_ratio)
    return SplitLists(
        train=items[n_test : n_test + n_train],
        validation=items[n_test + n_train :],
        test=items[:n_test],
    )


def train_validation_split(
    entries: Sequence[LstEntry], validation_split: float, *, seed: int = 100, source: str = ""
) -> SplitLists:
    """im2rec's shuffle and split with train_ratio = 1 - validation_split; both parts non-empty."""
    split = split_entries(entries, train_ratio=1.0 - validation_split, seed=seed)
    if not split.train or not split.validation:
        raise LstError(
            f"{source}: {len(entries)} images split {len(split.train)} train / "
            f"{len(split.validation)} validation at validation_split={validation_split}; both "
            "need at least one image"
        )
    return split


def write_lst(path: str | os.PathLike, entries: Iterable[LstEntry]) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.writelines(entry.to_line() for entry in entries)
