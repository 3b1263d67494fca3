"""
### semantic_segmentation

FCN, PSP or DeepLabV3 on a dilated ResNet-50/101, from a four-folder dataset: `layout` (orphans,
unreadable files, size mismatches, annotations that are not 8-bit single-channel PNGs; the report
kept as `data/layout.json`) -> `remap_train` / `remap_validation` (annotations through the label
map: the form's, else the dataset's `label_map/<split>_label_map.json`, else the identity; every
value must become a class or 255) -> `train` -> `evaluate` (mIoU, pixel accuracy, per-class IoU,
confusion matrix and overlays; the champion re-scored on the same data) -> `gate` -> `promote`
-> `batch_transform` (a palette PNG mask per image at its own size, and a JSON Lines index).

Everything a run writes goes under `<output_uri>/run=<logical date>/` (`run=<run id>` without
one). `runner=local` runs the GPU steps in `.venv-trainer` on this machine; `runner=kubernetes`
as pods of the trainer image.
"""

from __future__ import annotations

from airflow.sdk import Param

from operators.dag_builder import Tail, pipeline
from operators.data_prep import LabelMapRemapOperator, SegmentationLayoutOperator
from operators.form_schema import input_location
from operators.paths import data_root
from operators.pipeline import (
    RUN,
    hyperparameter_param,
    other_hyperparameters_param,
    run_file_unless,
    xcom,
)
from tasks.algorithms import get_algorithm

SPEC = get_algorithm("semantic-segmentation")
DATA_ROOT = data_root()
FORM_HYPERPARAMETERS = (
    "num_classes",
    "algorithm",
    "backbone",
    "use_pretrained_model",
    "base_size",
    "crop_size",
    "epochs",
    "mini_batch_size",
    "optimizer",
    "learning_rate",
)
DATASET = "params.dataset_uri.rstrip('/')"


def dataset_file(path: str) -> str:
    """Template: `<dataset_uri>/<path>`."""
    return "{{ " + DATASET + f" }}}}/{path}"


def dataset_file_unless_eval_uri(path: str) -> str:
    """Template: the form's fixed evaluation set, else `<dataset_uri>/<path>`."""
    return "{{ params.eval_uri or (" + DATASET + f" ~ '/{path}') }}}}"


def annotations(split: str) -> str:
    """The run's remapped annotations of `split`."""
    return f"{RUN}/data/{split}_annotation"


def prepare() -> Tail:
    """layout -> remap_train, remap_validation (in the training DAG and in its tuning DAG)."""
    layout = SegmentationLayoutOperator(
        task_id="layout",
        dataset_uri="{{ params.dataset_uri }}",
        label_map_uri="{{ params.label_map_uri or '' }}",
        field_titles={
            "dataset_uri": "[Dataset] dataset_uri",
            "label_map_uri": "[Label map] label_map_uri",
        },
        output_uri=f"{RUN}/data",
    )
    remaps = [
        LabelMapRemapOperator(
            task_id=f"remap_{split}",
            annotations_uri=dataset_file(f"{split}_annotation"),
            label_map_uri=xcom("layout", f"{split}_label_map"),
            output_uri=annotations(split),
            num_classes="{{ params.num_classes }}",
            split=split,
        )
        for split in ("train", "validation")
    ]
    layout >> remaps
    return Tail(
        after=remaps,
        train_channels={
            "train": dataset_file("train"),
            "validation": dataset_file("validation"),
            "train_annotation": annotations("train"),
            "validation_annotation": annotations("validation"),
        },
        train_hyperparameters={"num_training_samples": xcom("layout", "train")},
        evaluation_channels={
            "validation": dataset_file_unless_eval_uri("validation"),
            "validation_annotation": run_file_unless("eval_uri", "data/validation_annotation"),
        },
        data_uris=[f"{RUN}/data/layout.json"],
        profile_uris=[xcom(f"remap_{split}", "profile") for split in ("train", "validation")],
        transform_data="{{ params.transform_uri or (" + DATASET + " ~ '/validation') }}",
    )


semantic_segmentation = pipeline(
    dag_id="semantic_segmentation",
    spec=SPEC,
    description="Semantic segmentation: layout check -> label map -> train -> evaluate -> masks",
    doc_md=__doc__,
    form=FORM_HYPERPARAMETERS,
    params={
        "dataset_uri": Param(
            f"file://{DATA_ROOT}/datasets/scenes",
            type="string",
            minLength=1,
            title="Dataset",
            description="Root of train/, train_annotation/, validation/, "
            "validation_annotation/ and optional label_map/ (file:// or s3://).",
            **input_location(SegmentationLayoutOperator.inputs["dataset_uri"]),
        ),
        "label_map_uri": Param(
            None,
            type=["null", "string"],
            title="Label map",
            description='A label map JSON ({"scale": "k"} or {"map": {"<class>": <value>}}) '
            "for both splits. Empty: the dataset's label_map/ files, else pixel value = class.",
            **input_location(SegmentationLayoutOperator.inputs["label_map_uri"]),
        ),
        "transform_uri": Param(
            None,
            type=["null", "string"],
            title="Images to segment",
            description="Images for batch transform (a folder, file:// or s3://). "
            "Empty: the validation images.",
        ),
        "initial_model_uri": Param(
            None,
            type=["null", "string"],
            title="Start from model",
            description="A model.tar.gz of this pipeline to continue from (incremental "
            "training; same backbone, algorithm, crop_size and num_classes).",
        ),
        # Required by the algorithm; the default is the demo dataset's (background + 2 shapes).
        "num_classes": hyperparameter_param(
            SPEC,
            "num_classes",
            default=3,
            description="Classes, background included (annotation value 255 is ignored).",
        ),
        "hyperparameters": other_hyperparameters_param(
            "Any other hyperparameter of the algorithm (lr_scheduler, momentum, "
            "weight_decay, early_stopping, syncbn, ...), as strings. num_training_samples "
            "is counted from the data."
        ),
    },
    prepare=prepare,
).dag
