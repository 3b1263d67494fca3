"""Class-folder datasets: checked, split and copied under the run."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from operators.run_record import RunStepOperator, pipeline_step
from operators.storage import (
    list_files,
    local_files,
    local_path,
    remove_prefix,
    upload,
    write_text,
)
from tasks.data.class_folders import (
    ClassFolderError,
    ClassFolders,
    list_local,
    scan,
    stratified_split,
)
from tasks.data.layouts import Input
from tasks.data.lst_validation import inspect_images
from tasks.data.profile import PROFILE, ImageFacts, ProfileRow, write_profile
from tasks.problems import Problem, describe

REPORT = "class_folders.json"


class ClassFolderDatasetOperator(RunStepOperator):
    """Checks a class-folder dataset (`<dataset>/<class>/<image>`; class index = sorted folder
    name) and writes the run's copy of its training and validation parts.

    Every problem in one message: stray files, empty class folders, fewer than 2 classes,
    images that do not decode; the check's report is kept as `class_folders.json` under
    `output_uri` even when it fails. Validation is the `validation_uri` dataset (same class
    names) or a stratified, seeded split of the dataset.

    :param dataset_uri: the class folders (templated).
    :param output_uri: for `class_folders.json`, `training/` and `validation/` (templated).
    :param validation_uri: separate validation class folders; empty: a split (templated).
    :param validation_split_ratio: fraction of each class held out (templated).
    :param seed: the split's seed.
    :param workers: concurrent decodes and copies.
    """

    uri_fields = ("dataset_uri", "validation_uri", "output_uri")
    inputs = {
        "dataset_uri": Input(
            "a folder of class folders (<class>/<image>.jpg|.png)", "class-folders"
        ),
        "validation_uri": Input(
            "a folder of class folders (<class>/<image>.jpg|.png)", "class-folders"
        ),
    }
    template_fields: Sequence[str] = (
        "dataset_uri",
        "validation_uri",
        "output_uri",
        "validation_split_ratio",
    )

    def __init__(
        self,
        *,
        dataset_uri: str,
        output_uri: str,
        validation_uri: str = "",
        validation_split_ratio: float | str = 0.2,
        seed: int = 100,
        workers: int = 8,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.dataset_uri, self.output_uri = dataset_uri, output_uri
        self.validation_uri = validation_uri
        self.validation_split_ratio, self.seed, self.workers = validation_split_ratio, seed, workers

    def _checked(
        self, uri: str, *, min_classes: int, report_name: str
    ) -> tuple[ClassFolders, dict[str, ImageFacts]]:
        """The dataset at `uri`, every image decoded, and what each image is (by its path)."""
        root = local_path(uri)
        files, folders = list_local(root) if root else (list_files(uri), [])
        dataset, problems = scan(files, folders=folders, source=uri, min_classes=min_classes)
        with local_files(uri, [rel for rel, _ in dataset.images]) as local:
            found = inspect_images((local / rel for rel, _ in dataset.images), workers=self.workers)
        problems += [Problem(0, f) for f in found if isinstance(f, str)]
        report = dataset.report(problems)
        write_text(f"{self.out}/{report_name}", json.dumps(report, indent=2) + "\n")
        if problems:
            raise ClassFolderError(describe(uri, problems))
        for name, count in report["images_per_class"].items():
            self.log.info("%s: class %r, %d images", uri, name, count)
        return dataset, {rel: f for (rel, _), f in zip(dataset.images, found, strict=True)}

    def _copy(self, uri: str, dataset: ClassFolders, dest: str) -> None:
        rels = [rel for rel, _ in dataset.images]
        with local_files(uri, rels) as local, ThreadPoolExecutor(self.workers) as pool:
            list(pool.map(lambda rel: upload(local / rel, f"{dest}/{rel}"), rels))

    @pipeline_step
    def execute(self, context: Any) -> dict[str, Any]:
        self.out = self.output_uri.rstrip("/")
        remove_prefix(self.out)  # a rerun's copy holds this run's data only
        dataset, facts = self._checked(self.dataset_uri, min_classes=2, report_name=REPORT)
        if self.validation_uri:
            train, validation_source = dataset, self.validation_uri
            validation, validation_facts = self._checked(
                self.validation_uri, min_classes=1, report_name=f"validation_{REPORT}"
            )
            unknown = sorted(set(validation.classes) - set(dataset.classes))
            if unknown:
                raise ClassFolderError(
                    f"{self.validation_uri}: class folder(s) {', '.join(unknown)} are not "
                    f"classes of {self.dataset_uri} ({', '.join(dataset.classes)})"
                )
        else:
            train, validation = stratified_split(
                dataset, float(self.validation_split_ratio), seed=self.seed
            )
            validation_source, validation_facts = self.dataset_uri, facts
        rows = [
            ProfileRow(split, label, rel, known[rel])
            for split, part, known in (
                ("train", train, facts),
                ("validation", validation, validation_facts),
            )
            for rel, label in part.images
        ]
        with tempfile.TemporaryDirectory() as tmp:
            upload(write_profile(Path(tmp) / PROFILE, rows), f"{self.out}/{PROFILE}")
        self._copy(self.dataset_uri, train, f"{self.out}/training")
        self._copy(validation_source, validation, f"{self.out}/validation")
        self.log.info(
            "%d training and %d validation images in %d classes",
            len(train.images),
            len(validation.images),
            len(dataset.classes),
        )
        return {
            "classes": dataset.classes,
            "num_classes": len(dataset.classes),
            "training_uri": f"{self.out}/training",
            "validation_uri": f"{self.out}/validation",
            "train_samples": len(train.images),
            "validation_samples": len(validation.images),
            "profile": f"{self.out}/{PROFILE}",
        }
