"""
### image_classification

Retrains the ResNet image classifier on a class-folder image dataset or an augmented manifest:
`make_lst` (im2rec-style train/validation lists; a manifest is validated first) -> `pack_recordio`
(RecordIO per split, every image checked) -> `train` -> `evaluate` (validation accuracy,
confusion matrix; the current champion re-scored on the same data) -> `gate` (challenger vs
champion: minimum improvement, per-class drop, floor) -> `promote` (skipped when the champion
stays) -> `batch_transform` (JSON Lines probabilities for every image, by the champion).

Everything a run writes goes under `<output_uri>/run=<logical date>/` (`run=<run id>` for runs
triggered without a logical date), so a rerun or a backfill of the same interval replaces only its
own outputs. `runner=local` runs the GPU steps in
`.venv-trainer` on this machine; `runner=kubernetes` runs them as pods of the trainer image.
"""

from __future__ import annotations

from airflow.sdk import DAG, Asset, Param, TaskGroup

from operators.data_prep import LstGenerationOperator, RecordIOPackOperator
from operators.lifecycle import RollbackOperator
from operators.paths import data_root
from operators.pipeline import (
    CHAMPION,
    RUN,
    START_DATE,
    container_step,
    form_hyperparameters,
    hyperparameter_param,
    lifecycle_params,
    lifecycle_steps,
    models_uri_param,
    or_run_file,
    pipeline_dag,
    transform_model,
    xcom,
)
from tasks.algorithms import get_algorithm
from tasks.contract import MODEL_ARCHIVE, Step
from tasks.data.pack import PackOptions

SPEC = get_algorithm("image-classification")
DATA_ROOT = data_root()
FORM_HYPERPARAMETERS = (
    "num_layers",
    "image_shape",
    "epochs",
    "mini_batch_size",
    "learning_rate",
    "optimizer",
)
MODEL = f"{RUN}/train/{MODEL_ARCHIVE}"
SINGLE_LABEL = "single-label"
MODELS = f"file://{DATA_ROOT}/models"
# Updated when a model is promoted (or rolled back to): its event's extra is the champion entry
# (model_uri, metrics, run_id, data_date, data_fingerprint).
MODEL_ASSET = Asset(name="image_classification_model")
# Updated by whatever lands new training data (docs/examples/dataset_producer.py); with
# VISION_PIPELINES_IMAGE_CLASSIFICATION_ON_DATASET_CHANGE=true each update starts a retraining.
DATASET_ASSET = Asset(name="image_classification_dataset")

with pipeline_dag(
    dag_id="image_classification",
    spec=SPEC,
    dataset=DATASET_ASSET,
    description="ResNet image classification: .lst -> RecordIO -> train -> evaluate -> transform",
    doc_md=__doc__,
    params={
        "dataset_uri": Param(
            f"file://{DATA_ROOT}/datasets/shapes",
            type="string",
            minLength=1,
            title="Dataset",
            description="Class-folder images (<dataset_uri>/<class name>/<image>.jpg|.png), or "
            "an augmented manifest (.manifest/.jsonl with source-ref and class; file:// or s3://).",
        ),
        "output_uri": Param(
            f"file://{DATA_ROOT}/runs/image_classification",
            type="string",
            minLength=1,
            title="Output location",
            description="Where runs write; each run under run=<logical date>/ (or run=<run id>).",
        ),
        # Optional values are nullable: the form sends an empty field as null.
        "transform_uri": Param(
            None,
            type=["null", "string"],
            title="Images to predict",
            description="Images for batch transform (a folder, file:// or s3://). "
            "Empty: the whole dataset.",
        ),
        "initial_model_uri": Param(
            None,
            type=["null", "string"],
            title="Start from model",
            description="A previous model.tar.gz to continue from (incremental training; same "
            "num_layers, image_shape and classes). Empty: train from scratch.",
        ),
        "label_format": Param(
            SINGLE_LABEL,
            type="string",
            enum=[SINGLE_LABEL, "multi-hot"],
            values_display={
                SINGLE_LABEL: "one class per image",
                "multi-hot": "multi-label manifest, labels like [1, 0, 1]",
            },
            title="Labels",
            description="Manifests only: one class per image, or multi-label (multi-hot).",
        ),
        "validation_split": Param(
            0.2,
            type="number",
            minimum=0.01,
            maximum=0.9,
            title="Validation fraction",
            description="Fraction of the images held out for validation (im2rec 1 - train_ratio).",
        ),
        **lifecycle_params(SPEC, MODELS),
        **{name: hyperparameter_param(SPEC, name) for name in FORM_HYPERPARAMETERS},
        "hyperparameters": Param(
            {},
            type="object",
            title="Other hyperparameters",
            description="Any other hyperparameter of the algorithm (momentum, weight_decay, "
            "lr_scheduler_step, ...), as strings. num_classes and num_training_samples are "
            "derived from the data.",
        ),
    },
) as dag:
    make_lst = LstGenerationOperator(
        task_id="make_lst",
        images_uri="{{ params.dataset_uri }}",
        output_uri=f"{RUN}/lists",
        validation_split="{{ params.validation_split }}",
        # Single-label lists carry no label format.
        label_format=f"{{{{ '' if params.label_format == '{SINGLE_LABEL}' "
        "else params.label_format }}",
    )
    with TaskGroup("pack_recordio") as pack_recordio:
        for split in ("train", "validation"):
            RecordIOPackOperator(
                task_id=split,
                lst_uri=xcom("make_lst", f"{split}_lst"),
                images_uri=xcom("make_lst", "image_root"),
                output_uri=f"{RUN}/recordio/{split}",
                class_names="{{ ti.xcom_pull(task_ids='make_lst')['classes'] | tojson }}",
                # All labels of a multi-label list; one-label lists pack as before.
                options=PackOptions(pack_label=True),
            )
    train = container_step(
        task_id="train",
        step=Step.TRAIN,
        spec=SPEC,
        channels={
            "train": f"{RUN}/recordio/train",
            "validation": f"{RUN}/recordio/validation",
            "model": "{{ params.initial_model_uri or '' }}",
        },
        output="train",
        hyperparameters={
            **{k: xcom("make_lst", k) for k in ("num_classes", "num_training_samples")},
            "multi_label": xcom("make_lst", "multi_label"),
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
            "validation": or_run_file("params.eval_uri", "recordio/validation"),
            "champion": "{{ " + CHAMPION + " }}",
        },
        output="evaluate",
    )
    gate, promote = lifecycle_steps(
        spec=SPEC,
        model=MODEL,
        data_uris=[
            f"{RUN}/lists/{name}" for name in ("train.lst", "validation.lst", "classes.json")
        ],
        outlets=[MODEL_ASSET],
    )
    batch_transform = container_step(
        task_id="batch_transform",
        step=Step.TRANSFORM,
        spec=SPEC,
        channels={
            "model": transform_model(f"train/{MODEL_ARCHIVE}"),
            "data": "{{ params.transform_uri or params.dataset_uri }}",
        },
        output="batch_transform",
        trigger_rule="none_failed",  # also when promote was skipped (the champion stayed)
    )
    make_lst >> pack_recordio >> train >> evaluate >> gate >> promote >> batch_transform

with DAG(
    dag_id="image_classification_rollback",
    description="Make an earlier champion of image_classification the champion again",
    doc_md="Rollback: the champion pointer of `image_classification` goes back to the model of "
    "`to_run_id` (empty: the previous champion). Same as `python -m tasks.lifecycle rollback`.",
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["vision-pipelines", SPEC.id],
    params={
        "models_uri": models_uri_param(MODELS),
        "to_run_id": Param(
            None,
            type=["null", "string"],
            title="Run to restore",
            description="The run id of the champion to restore; empty: the previous champion.",
        ),
    },
):
    RollbackOperator(
        task_id="rollback",
        models_uri="{{ params.models_uri }}",
        pipeline="image_classification",
        to_run_id="{{ params.to_run_id or '' }}",
        outlets=[MODEL_ASSET],
    )
