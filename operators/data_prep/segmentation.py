"""Segmentation datasets: the four-folder layout check and label-map remapping."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from operators.run_record import RunStepOperator, pipeline_step
from operators.storage import (
    local_copy,
    remove_prefix,
    upload,
    write_text,
)
from tasks.data.label_map import LabelMapError, read_label_map, remap_folder
from tasks.data.layouts import Input
from tasks.data.profile import PROFILE, profile_beside, write_profile
from tasks.data.segmentation_layout import SPLITS, LayoutError, check_segmentation_layout


class LabelMapRemapOperator(RunStepOperator):
    """Rewrites annotation PNGs to class indices with a `{"scale"}` or `{"map"}` label map,
    keeping mode P or L and 255 as "ignore"; pixel values the map does not cover fail the task.

    :param annotations_uri: folder of annotation PNGs (templated).
    :param label_map_uri: the label map JSON; empty for the identity (templated).
    :param output_uri: folder for the remapped PNGs (templated).
    :param num_classes: classes the result must fall in, when known (templated).
    :param split: the split the annotations are, in the data profile (`<output_uri>.profile.csv.gz`:
        size, mode and each class's pixel share per annotation).
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
        split: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.annotations_uri, self.output_uri = annotations_uri, output_uri
        self.label_map_uri, self.num_classes, self.split = label_map_uri, num_classes, split

    @pipeline_step
    def execute(self, context: Any) -> dict[str, Any]:
        out = self.output_uri.rstrip("/")
        with local_copy(self.annotations_uri) as src, tempfile.TemporaryDirectory() as tmp:
            if self.label_map_uri:
                with local_copy(self.label_map_uri) as map_path:
                    label_map = read_label_map(map_path)
            else:
                label_map = read_label_map(None)
            num_classes = int(self.num_classes) if self.num_classes else None
            rows = remap_folder(src, Path(tmp), label_map, num_classes, split=self.split)
            for png in sorted(Path(tmp).glob("*.png")):
                upload(png, f"{out}/{png.name}")
            profile = profile_beside(out)
            upload(write_profile(Path(tmp) / PROFILE, rows), profile)
        self.log.info("remapped %d annotations into %s", len(rows), out)
        return {"annotations": len(rows), "output_uri": out, "profile": profile}


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
    inputs = {
        "dataset_uri": Input(
            "a folder holding train/, train_annotation/, validation/ and validation_annotation/",
            "segmentation",
        ),
        "label_map_uri": Input("a label map JSON file", "file"),
    }
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
        if self.label_map_uri:  # the form's own file: named by its field if it does not parse
            with local_copy(self.label_map_uri) as path:
                try:
                    read_label_map(path)
                except LabelMapError as e:
                    title = self.field_titles.get("label_map_uri", "label_map_uri")
                    raise LabelMapError(f"{title} {self.label_map_uri}: {e}") from e
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
