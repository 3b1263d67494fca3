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

from airflow.sdk import Asset, Param

from operators.data_prep import LabelMapRemapOperator, SegmentationLayoutOperator
from operators.paths import data_root
from operators.pipeline import (
    CHAMPION,
    RUN,
    RUN_EXPRESSION,
    container_step,
    form_hyperparameters,
    hyperparameter_param,
    lifecycle_params,
    lifecycle_steps,
    pipeline_dag,
    transform_model,
    xcom,
)
from tasks.algorithms import get_algorithm
from tasks.contract import MODEL_ARCHIVE, Step

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
MODEL = f"{RUN}/train/{MODEL_ARCHIVE}"
MODELS = f"file://{DATA_ROOT}/models"
MODEL_ASSET = Asset(name="semantic_segmentation_model")
DATASET_ASSET = Asset(name="semantic_segmentation_dataset")
DATASET = "params.dataset_uri.rstrip('/')"


def annotations(split: str) -> str:
    """The run's remapped annotations of `split`."""
    return f"{RUN}/data/{split}_annotation"


with pipeline_dag(
    dag_id="semantic_segmentation",
    spec=SPEC,
    dataset=DATASET_ASSET,
    description="Semantic segmentation: layout check -> label map -> train -> evaluate -> masks",
    doc_md=__doc__,
    params={
        "dataset_uri": Param(
            f"file://{DATA_ROOT}/datasets/scenes",
            type="string",
            minLength=1,
            title="Dataset",
            description="Root of train/, train_annotation/, validation/, "
            "validation_annotation/ and optional label_map/ (file:// or s3://).",
        ),
        "output_uri": Param(
            f"file://{DATA_ROOT}/runs/semantic_segmentation",
            type="string",
            minLength=1,
            title="Output location",
            description="Where runs write; each run under run=<logical date>/ (or run=<run id>).",
        ),
        "label_map_uri": Param(
            None,
            type=["null", "string"],
            title="Label map",
            description='A label map JSON ({"scale": "k"} or {"map": {"<class>": <value>}}) '
            "for both splits. Empty: the dataset's label_map/ files, else pixel value = class.",
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
        **lifecycle_params(SPEC, MODELS),
        **{name: hyperparameter_param(SPEC, name) for name in FORM_HYPERPARAMETERS},
        # Required by the algorithm; the default is the demo dataset's (background + 2 shapes).
        "num_classes": hyperparameter_param(
            SPEC,
            "num_classes",
            default=3,
            description="Classes, background included (annotation value 255 is ignored).",
        ),
        "hyperparameters": Param(
            {},
            type="object",
            title="Other hyperparameters",
            description="Any other hyperparameter of the algorithm (lr_scheduler, momentum, "
            "weight_decay, early_stopping, syncbn, ...), as strings. num_training_samples "
            "is counted from the data.",
        ),
    },
) as dag:
    layout = SegmentationLayoutOperator(
        task_id="layout",
        dataset_uri="{{ params.dataset_uri }}",
        label_map_uri="{{ params.label_map_uri or '' }}",
        output_uri=f"{RUN}/data",
    )
    remaps = [
        LabelMapRemapOperator(
            task_id=f"remap_{split}",
            annotations_uri="{{ " + DATASET + f" }}}}/{split}_annotation",
            label_map_uri=xcom("layout", f"{split}_label_map"),
            output_uri=annotations(split),
            num_classes="{{ params.num_classes }}",
        )
        for split in ("train", "validation")
    ]
    train = container_step(
        task_id="train",
        step=Step.TRAIN,
        spec=SPEC,
        channels={
            "train": "{{ " + DATASET + " }}/train",
            "validation": "{{ " + DATASET + " }}/validation",
            "train_annotation": annotations("train"),
            "validation_annotation": annotations("validation"),
            "model": "{{ params.initial_model_uri or '' }}",
        },
        output="train",
        hyperparameters={
            "num_training_samples": xcom("layout", "train"),
            **form_hyperparameters(FORM_HYPERPARAMETERS),
        },
        extra_hyperparameters="{{ params.hyperparameters | tojson }}",
    )
    evaluate = container_step(
        task_id="evaluate",
        step=Step.EVALUATE,
        spec=SPEC,
        channels={
            "model": MODEL,
            "validation": "{{ params.eval_uri or (" + DATASET + " ~ '/validation') }}",
            "validation_annotation": "{{ '' if params.eval_uri else ("
            + RUN_EXPRESSION
            + " ~ '/data/validation_annotation') }}",
            "champion": "{{ " + CHAMPION + " }}",
        },
        output="evaluate",
    )
    gate, promote = lifecycle_steps(
        spec=SPEC, model=MODEL, data_uris=[f"{RUN}/data/layout.json"], outlets=[MODEL_ASSET]
    )
    batch_transform = container_step(
        task_id="batch_transform",
        step=Step.TRANSFORM,
        spec=SPEC,
        channels={
            "model": transform_model(f"train/{MODEL_ARCHIVE}"),
            "data": "{{ params.transform_uri or (" + DATASET + " ~ '/validation') }}",
        },
        output="batch_transform",
        trigger_rule="none_failed",
    )
    layout >> remaps >> train >> evaluate >> gate >> promote >> batch_transform
