"""Data-prep operators: thin adapters from Airflow (templates, storage, XCom) to tasks/data."""

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
    local_copy,
    local_files,
    local_path,
    remove_prefix,
    upload,
    write_text,
)
from tasks.contract import MANIFEST_VALIDATION
from tasks.data.class_folders import (
    ClassFolderError,
    ClassFolders,
    list_local,
    scan,
    stratified_split,
)
from tasks.data.class_folders import (
    image_problems as class_folder_image_problems,
)
from tasks.data.label_map import read_label_map, remap_folder
from tasks.data.lst import (
    IMAGE_EXTENSIONS,
    class_folder_entries,
    list_class_folders,
    train_validation_split,
    write_lst,
)
from tasks.data.lst_validation import LstValidationError, image_problems, validate_lst
from tasks.data.manifest import (
    DEFAULT_ATTRIBUTES,
    MANIFEST_SUFFIXES,
    check_manifest,
    manifest_entries,
    parse_options,
)
from tasks.data.manifest_validation import validate_manifest
from tasks.data.pack import PackOptions, pack_lst
from tasks.data.segmentation_layout import SPLITS, LayoutError, check_segmentation_layout
from tasks.problems import describe


class LstGenerationOperator(RunStepOperator):
    """Lists a class-folder image tree as im2rec does, or an augmented manifest's images (checked
    first, see ManifestValidationOperator), and writes `train.lst` and `validation.lst`.

    :param images_uri: root of the class folders, or a `.manifest` / `.jsonl` whose image
        references are relative to it or under its folder (templated).
    :param output_uri: folder for `train.lst`, `validation.lst` and `classes.json` (templated).
    :param validation_split: fraction of images for validation, as im2rec's 1 - train_ratio
        (templated).
    :param label_format: for a multi-label manifest, `multi-hot` or `class-id` (templated).
    :param seed: shuffling seed (im2rec uses 100).
    :param exts: image file extensions to list.
    """

    uri_fields = ("images_uri", "output_uri")
    template_fields: Sequence[str] = (
        "images_uri",
        "output_uri",
        "validation_split",
        "label_format",
    )

    def __init__(
        self,
        *,
        images_uri: str,
        output_uri: str,
        validation_split: float | str = 0.2,
        label_format: str = "",
        seed: int = 100,
        exts: Sequence[str] = IMAGE_EXTENSIONS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.images_uri, self.output_uri = images_uri, output_uri
        self.validation_split, self.label_format = validation_split, label_format
        self.seed, self.exts = seed, tuple(exts)

    def _manifest_entries(self, out: str) -> tuple[list, list[str]]:
        """Validate the manifest (the result JSON kept beside the lists) and list its images."""
        content_type = "application/x-recordio" + (
            f"; label-format={self.label_format}" if self.label_format else ""
        )
        with local_copy(self.images_uri) as manifest, tempfile.TemporaryDirectory() as tmp:
            result = Path(tmp) / MANIFEST_VALIDATION
            try:
                validate_manifest(
                    manifest,
                    attribute_names=list(DEFAULT_ATTRIBUTES),
                    content_type=content_type,
                    num_classes=None,
                    result_path=result,
                )
            finally:
                if result.exists():
                    upload(result, f"{out}/{MANIFEST_VALIDATION}")
            records = check_manifest(
                manifest,
                **parse_options(
                    attribute_names=DEFAULT_ATTRIBUTES, content_type=content_type, num_classes=None
                ),
            )
            return manifest_entries(records, manifest, manifest_uri=self.images_uri)

    @pipeline_step
    def execute(self, context: Any) -> dict[str, Any]:
        out = self.output_uri.rstrip("/")
        if self.images_uri.endswith(MANIFEST_SUFFIXES):
            entries, classes = self._manifest_entries(out)
            image_root = self.images_uri.rsplit("/", 1)[0]
        else:
            root = local_path(self.images_uri)
            listing = (
                list_class_folders(root, self.exts)
                if root
                # An object store is listed in one pass; no image is downloaded to name them.
                else class_folder_entries(
                    list_files(self.images_uri), self.exts, source=self.images_uri
                )
            )
            entries, classes, image_root = listing.entries, listing.classes, self.images_uri
        split = train_validation_split(
            entries, float(self.validation_split), seed=self.seed, source=self.images_uri
        )
        with tempfile.TemporaryDirectory() as tmp:
            for name, part in (("train", split.train), ("validation", split.validation)):
                write_lst(Path(tmp) / f"{name}.lst", part)
                upload(Path(tmp) / f"{name}.lst", f"{out}/{name}.lst")
        write_text(f"{out}/classes.json", json.dumps(classes) + "\n")
        for label, name in enumerate(classes):
            self.log.info("class %d: %s", label, name)
        self.log.info(
            "%d train and %d validation images in %d classes",
            len(split.train),
            len(split.validation),
            len(classes),
        )
        return {
            "train_lst": f"{out}/train.lst",
            "validation_lst": f"{out}/validation.lst",
            "image_root": image_root,
            "classes": classes,
            "num_classes": len(classes),
            "multi_label": int(len(entries[0].labels) > 1),
            "num_training_samples": len(split.train),
            "num_validation_samples": len(split.validation),
        }


class RecordIOPackOperator(RunStepOperator):
    """Packs a `.lst` and its images into `<name>.rec` + `<name>.idx` (im2rec's byte format).

    :param lst_uri: the image list (templated).
    :param images_uri: the root the list's paths are relative to (templated).
    :param output_uri: folder for the `.rec`, `.idx` and, when given, `classes.json` (templated).
    :param class_names: class names in label order (a list or its JSON), written as
        `classes.json` (templated).
    :param options: im2rec's encoding options (pass-through, resize, quality, ...).
    :param num_workers: encoding processes; records keep the list order.
    """

    uri_fields = ("lst_uri", "images_uri", "output_uri")
    template_fields: Sequence[str] = ("lst_uri", "images_uri", "output_uri", "class_names")

    def __init__(
        self,
        *,
        lst_uri: str,
        images_uri: str,
        output_uri: str,
        class_names: Sequence[str] | str | None = None,
        options: PackOptions | None = None,
        num_workers: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.lst_uri, self.images_uri, self.output_uri = lst_uri, images_uri, output_uri
        self.class_names, self.options = class_names, options or PackOptions()
        self.num_workers = num_workers

    @pipeline_step
    def execute(self, context: Any) -> dict[str, Any]:
        out = self.output_uri.rstrip("/")
        name = self.lst_uri.rstrip("/").rsplit("/", 1)[-1].removesuffix(".lst")
        names = self.class_names
        if isinstance(names, str):
            names = json.loads(names) if names.strip() else None
        with local_copy(self.lst_uri) as lst_path:
            entries = validate_lst(lst_path, num_classes=len(names) if names else None)
        # Only this list's images are fetched (one split of a dataset in object storage).
        with local_files(self.images_uri, [e.path for e in entries]) as root:
            # Every missing or undecodable image of the list before packing.
            problems = image_problems(entries, root, decode=True)
            if problems:
                raise LstValidationError(describe(self.lst_uri, problems))
            with tempfile.TemporaryDirectory() as tmp:
                rec, idx = Path(tmp) / f"{name}.rec", Path(tmp) / f"{name}.idx"
                result = pack_lst(
                    entries,
                    root,
                    rec,
                    idx,
                    options=self.options,
                    num_workers=self.num_workers,
                    source=self.lst_uri,
                )
                upload(idx, f"{out}/{name}.idx")
                upload(rec, f"{out}/{name}.rec")
        if names:
            write_text(f"{out}/classes.json", json.dumps(list(names)) + "\n")
        self.log.info("packed %d records into %s/%s.rec", result.records, out, name)
        return {"rec": f"{out}/{name}.rec", "idx": f"{out}/{name}.idx", "records": result.records}


class ManifestValidationOperator(RunStepOperator):
    """Checks an augmented manifest (parsing, AttributeNames, labels, references, duplicates)
    before training, in one pass and bounded memory; its validation result (expectation types and
    counts as Great Expectations names them) is saved beside the outputs even when it fails.

    :param manifest_uri: the `.manifest` / `.jsonl` file (templated).
    :param output_uri: folder for `manifest_validation.json` (templated).
    :param attribute_names: the channel's AttributeNames: image reference, then label (templated).
    :param content_type: the channel's content type; `; label-format=...` marks multi-label.
    :param num_classes: classes the labels must fall in, when known (templated).
    :param segmentation: records carry an annotation `*-ref` instead of a label.
    """

    uri_fields = ("manifest_uri", "output_uri")
    template_fields: Sequence[str] = (
        "manifest_uri",
        "output_uri",
        "attribute_names",
        "num_classes",
    )

    def __init__(
        self,
        *,
        manifest_uri: str,
        output_uri: str,
        attribute_names: Sequence[str] = DEFAULT_ATTRIBUTES,
        content_type: str = "application/x-recordio",
        num_classes: int | str | None = None,
        segmentation: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.manifest_uri, self.output_uri = manifest_uri, output_uri
        self.attribute_names, self.content_type = attribute_names, content_type
        self.num_classes, self.segmentation = num_classes, segmentation

    @pipeline_step
    def execute(self, context: Any) -> dict[str, Any]:
        with local_copy(self.manifest_uri) as manifest, tempfile.TemporaryDirectory() as tmp:
            result = Path(tmp) / MANIFEST_VALIDATION
            try:
                records = validate_manifest(
                    manifest,
                    attribute_names=list(self.attribute_names),
                    content_type=self.content_type,
                    num_classes=int(self.num_classes) if self.num_classes else None,
                    segmentation=self.segmentation,
                    result_path=result,
                )
            finally:
                if result.exists():
                    upload(result, f"{self.output_uri.rstrip('/')}/{MANIFEST_VALIDATION}")
        self.log.info("%s: %d records pass every check", self.manifest_uri, records)
        return {
            "records": records,
            "validation": f"{self.output_uri}/{MANIFEST_VALIDATION}",
        }


class LabelMapRemapOperator(RunStepOperator):
    """Rewrites annotation PNGs to class indices with a `{"scale"}` or `{"map"}` label map,
    keeping mode P or L and 255 as "ignore"; pixel values the map does not cover fail the task.

    :param annotations_uri: folder of annotation PNGs (templated).
    :param label_map_uri: the label map JSON; empty for the identity (templated).
    :param output_uri: folder for the remapped PNGs (templated).
    :param num_classes: classes the result must fall in, when known (templated).
    """

    uri_fields = ("annotations_uri", "label_map_uri", "output_uri")
    template_fields: Sequence[str] = (
        "annotations_uri",
        "label_map_uri",
        "output_uri",
        "num_classes",
    )

    def __init__(
        self,
        *,
        annotations_uri: str,
        output_uri: str,
        label_map_uri: str = "",
        num_classes: int | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.annotations_uri, self.output_uri = annotations_uri, output_uri
        self.label_map_uri, self.num_classes = label_map_uri, num_classes

    @pipeline_step
    def execute(self, context: Any) -> dict[str, Any]:
        out = self.output_uri.rstrip("/")
        with local_copy(self.annotations_uri) as src, tempfile.TemporaryDirectory() as tmp:
            if self.label_map_uri:
                with local_copy(self.label_map_uri) as map_path:
                    label_map = read_label_map(map_path)
            else:
                label_map = read_label_map(None)
            count = remap_folder(
                src, Path(tmp), label_map, int(self.num_classes) if self.num_classes else None
            )
            for png in sorted(Path(tmp).glob("*.png")):
                upload(png, f"{out}/{png.name}")
        self.log.info("remapped %d annotations into %s", count, out)
        return {"annotations": count, "output_uri": out}


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

    def _checked(self, uri: str, *, min_classes: int, report_name: str) -> ClassFolders:
        root = local_path(uri)
        files, folders = list_local(root) if root else (list_files(uri), [])
        dataset, problems = scan(files, folders=folders, source=uri, min_classes=min_classes)
        with local_files(uri, [rel for rel, _ in dataset.images]) as local:
            problems += class_folder_image_problems(dataset, local, workers=self.workers)
        report = dataset.report(problems)
        write_text(f"{self.out}/{report_name}", json.dumps(report, indent=2) + "\n")
        if problems:
            raise ClassFolderError(describe(uri, problems))
        for name, count in report["images_per_class"].items():
            self.log.info("%s: class %r, %d images", uri, name, count)
        return dataset

    def _copy(self, uri: str, dataset: ClassFolders, dest: str) -> None:
        rels = [rel for rel, _ in dataset.images]
        with local_files(uri, rels) as local, ThreadPoolExecutor(self.workers) as pool:
            list(pool.map(lambda rel: upload(local / rel, f"{dest}/{rel}"), rels))

    @pipeline_step
    def execute(self, context: Any) -> dict[str, Any]:
        self.out = self.output_uri.rstrip("/")
        remove_prefix(self.out)  # a rerun's copy holds this run's data only
        dataset = self._checked(self.dataset_uri, min_classes=2, report_name=REPORT)
        if self.validation_uri:
            train, validation_source = dataset, self.validation_uri
            validation = self._checked(
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
            validation_source = self.dataset_uri
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
        }


LAYOUT_REPORT = "layout.json"


class SegmentationLayoutOperator(RunStepOperator):
    """Checks a segmentation dataset's layout (`train/`, `train_annotation/`, `validation/`,
    `validation_annotation/`, optional `label_map/`): orphans on both sides, unreadable files,
    size mismatches, annotations that are not single-channel 8-bit PNGs, every problem in one
    message. The report is kept as `layout.json` under `output_uri` even when it fails.

    Returns the pairs per split and each split's label map: `label_map_uri` for both, else the
    dataset's own `label_map/<split>_label_map.json`, else none (the identity).

    :param dataset_uri: the dataset root (templated).
    :param output_uri: the run's data folder, cleared first (templated).
    :param label_map_uri: one label map JSON for both splits; empty: the dataset's (templated).
    """

    uri_fields = ("dataset_uri", "label_map_uri", "output_uri")
    template_fields: Sequence[str] = ("dataset_uri", "label_map_uri", "output_uri")

    def __init__(
        self, *, dataset_uri: str, output_uri: str, label_map_uri: str = "", **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.dataset_uri, self.output_uri = dataset_uri, output_uri
        self.label_map_uri = label_map_uri

    @pipeline_step
    def execute(self, context: Any) -> dict[str, Any]:
        out, dataset = self.output_uri.rstrip("/"), self.dataset_uri.rstrip("/")
        remove_prefix(out)  # a rerun's data holds this run's only
        error: LayoutError | None = None
        with local_copy(dataset) as root:
            try:
                pairs = check_segmentation_layout(root)
            except LayoutError as e:
                error, pairs = e, {}
            label_maps = {
                split: self.label_map_uri
                or (
                    f"{dataset}/label_map/{split}_label_map.json"
                    if (root / "label_map" / f"{split}_label_map.json").is_file()
                    else ""
                )
                for split in SPLITS
            }
        report = {
            "dataset": dataset,
            "pairs": pairs,
            "label_maps": label_maps,
            "problems": str(error).splitlines()[1:] if error else [],
        }
        write_text(f"{out}/{LAYOUT_REPORT}", json.dumps(report, indent=2) + "\n")
        if error:
            raise error
        self.log.info("%s: pairs %s, label maps %s", dataset, pairs, label_maps)
        return {
            **pairs,
            **{f"{split}_label_map": uri for split, uri in label_maps.items()},
        }
