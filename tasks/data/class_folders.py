"""Class-folder datasets (`<root>/<class>/<image>`, class index = sorted folder name): every
problem found before training, and the stratified train/validation split."""

from __future__ import annotations

import os
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tasks.data.lst import IMAGE_EXTENSIONS
from tasks.data.lst_validation import image_problem
from tasks.errors import InputError
from tasks.problems import Problem, describe
from tasks.uris import walk_files


class ClassFolderError(InputError):
    """A class-folder dataset with problems; the message names every file (the first ones)."""


@dataclass(frozen=True)
class ClassFolders:
    """The images of a class-folder dataset: (path relative to the root, class index) each."""

    source: str
    classes: list[str]
    images: list[tuple[str, int]]

    def counts(self) -> dict[str, int]:
        per_label = Counter(label for _, label in self.images)
        return {name: per_label[i] for i, name in enumerate(self.classes)}

    def report(self, problems: Sequence[Problem] = ()) -> dict:
        """What the check found, as kept with a run."""
        return {
            "source": self.source,
            "classes": self.classes,
            "images_per_class": self.counts(),
            "images": len(self.images),
            "problems": [p.message for p in problems],
        }


def _hidden(rel_path: str) -> bool:
    return any(part.startswith(".") for part in rel_path.split("/"))


def scan(
    rel_paths: Iterable[str],
    *,
    source: str,
    folders: Iterable[str] = (),
    exts: Sequence[str] = IMAGE_EXTENSIONS,
    min_classes: int = 2,
) -> tuple[ClassFolders, list[Problem]]:
    """The dataset a listing describes (files relative to the root; `folders`: the top-level
    folders, so that an empty one is seen) and its layout problems: stray files, empty class
    folders, too few classes. Hidden files and folders are ignored."""
    wanted = tuple(e.lower() for e in exts)
    problems: list[Problem] = []
    by_class: dict[str, list[str]] = {f: [] for f in folders if not _hidden(f)}
    for rel in sorted(p for p in rel_paths if not _hidden(p)):
        folder, sep, _ = rel.partition("/")
        if not sep:
            problems.append(
                Problem(
                    0,
                    f"stray file {source}/{rel}: images go in a class folder, "
                    f"{source}/<class>/{rel}",
                )
            )
        elif os.path.splitext(rel)[1].lower() not in wanted:
            problems.append(
                Problem(0, f"stray file {source}/{rel}: not an image ({', '.join(exts)})")
            )
        else:
            by_class.setdefault(folder, []).append(rel)
    classes = sorted(by_class)
    for name in classes:
        if not by_class[name]:
            problems.append(Problem(0, f"class folder {source}/{name} holds no images"))
    if len(classes) < min_classes:
        problems.append(
            Problem(
                0,
                f"{len(classes)} class folder(s) ({', '.join(classes) or 'none'}); "
                f"at least {min_classes} are needed",
            )
        )
    images = [(rel, i) for i, name in enumerate(classes) for rel in by_class[name]]
    return ClassFolders(source, classes, images), problems


def list_local(root: Path) -> tuple[list[str], list[str]]:
    """(files, top-level folders) under `root`, relative, following links as im2rec does."""
    if not root.is_dir():
        raise ClassFolderError(f"{root}: dataset folder does not exist")
    files = list(walk_files(root, f"dataset {root}"))
    return files, [p.name for p in root.iterdir() if p.is_dir()]


def check_class_folders(
    root: Path, *, decode: bool = True, workers: int = 8, min_classes: int = 2
) -> ClassFolders:
    """Scan a local class-folder dataset and decode every image; all problems in one message."""
    files, folders = list_local(Path(root))
    dataset, problems = scan(files, folders=folders, source=str(root), min_classes=min_classes)
    problems += image_problems(dataset, Path(root), decode=decode, workers=workers)
    if problems:
        raise ClassFolderError(describe(str(root), problems))
    return dataset


def image_problems(
    dataset: ClassFolders, root: Path, *, decode: bool = True, workers: int = 8
) -> list[Problem]:
    """A problem per image under `root` that is missing or (with `decode`) does not decode."""
    paths = [root / rel for rel, _ in dataset.images]
    if not decode:
        return [Problem(0, f"image {p} not found") for p in paths if not p.is_file()]
    with ThreadPoolExecutor(workers) as pool:
        return [Problem(0, found) for found in pool.map(image_problem, paths) if found]


def stratified_split(
    dataset: ClassFolders, ratio: float, *, seed: int = 100
) -> tuple[ClassFolders, ClassFolders]:
    """(train, validation): `ratio` of each class held out (at least one image of a class with
    two or more, none of a class with one), seeded, so a rerun splits the same way."""
    rng = random.Random(seed)
    train: list[tuple[str, int]] = []
    validation: list[tuple[str, int]] = []
    for label in range(len(dataset.classes)):
        items = [item for item in dataset.images if item[1] == label]
        rng.shuffle(items)
        held = min(max(round(len(items) * ratio), 1), len(items) - 1) if len(items) > 1 else 0
        validation += items[:held]
        train += items[held:]
    if not validation:
        raise ClassFolderError(
            f"{dataset.source}: validation_split_ratio={ratio} holds out no image; give a "
            "validation channel or more images per class"
        )
    return (
        ClassFolders(dataset.source, dataset.classes, sorted(train)),
        ClassFolders(dataset.source, dataset.classes, sorted(validation)),
    )
