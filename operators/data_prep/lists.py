"""Image lists: im2rec-style .lst generation from class folders or a manifest, and manifest
validation."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from operators.run_record import RunStepOperator, pipeline_step
from operators.storage import (
    list_files,
    local_copy,
    local_path,
    upload,
    write_text,
)
from tasks.contract import MANIFEST_VALIDATION
from tasks.data.augmented_manifest import (
    DEFAULT_ATTRIBUTES,
    MANIFEST_SUFFIXES,
    check_manifest,
    manifest_entries,
    parse_options,
)
from tasks.data.layouts import Input
from tasks.data.lst import (
    IMAGE_EXTENSIONS,
    class_folder_entries,
    list_class_folders,
    train_validation_split,
    write_lst,
)
from tasks.data.manifest_validation import validate_manifest


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
    inputs = {
        "images_uri": Input(
            "a folder of class folders (<class>/<image>.jpg|.png) or an augmented "
            "manifest (.manifest/.jsonl)",
            "class-folders-or-manifest",
        )
    }
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
