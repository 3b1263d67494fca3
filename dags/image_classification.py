"""
### image_classification

Retrains the ResNet image classifier on a class-folder image dataset or an augmented manifest:
`make_lst` (im2rec-style train/validation lists; a manifest is validated first) -> `pack_recordio`
(RecordIO per split, every image checked) -> `train` -> `evaluate` (validation accuracy,
confusion matrix) -> `batch_transform` (JSON Lines probabilities for every image).

Everything a run writes goes under `<output_uri>/run=<logical date>/` (`run=<run id>` for runs
triggered without a logical date), so a rerun or a backfill of the same interval replaces only its
own outputs. `runner=local` runs the GPU steps in
`.venv-trainer` on this machine; `runner=kubernetes` runs them as pods of the trainer image.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone

from airflow.sdk import DAG, Asset, Param, TaskGroup

from operators.container import ContainerStepOperator, Runner
from operators.data_prep import LstGenerationOperator, RecordIOPackOperator
from operators.paths import data_root, run_uri
from tasks.data.pack import PackOptions

DATA_ROOT = data_root()
DEPTHS = [18, 34, 50, 101, 152, 200, 20, 32, 44, 56, 110]

RUN = "{{ run_uri(params.output_uri, dag_run.logical_date, run_id) }}"
# Updated by every successful training run; its event's extra holds the model URI and metrics.
MODEL = Asset(name="image_classification_model")


def _lists(key: str) -> str:
    return "{{ ti.xcom_pull(task_ids='make_lst')['" + key + "'] }}"


with DAG(
    dag_id="image_classification",
    description="ResNet image classification: .lst -> RecordIO -> train -> evaluate -> transform",
    doc_md=__doc__,
    schedule=os.environ.get("VISION_PIPELINES_IMAGE_CLASSIFICATION_SCHEDULE") or None,
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    user_defined_macros={"run_uri": run_uri},
    tags=["vision-pipelines", "image-classification"],
    params={
        "dataset_uri": Param(
            f"file://{DATA_ROOT}/datasets/shapes",
            type="string",
            description="Class-folder images (<dataset_uri>/<class name>/<image>.jpg|.png), or "
            "an augmented manifest (.manifest/.jsonl with source-ref and class; file:// or s3://).",
        ),
        "output_uri": Param(
            f"file://{DATA_ROOT}/runs/image_classification",
            type="string",
            description="Where runs write; each run under run=<logical date>/.",
        ),
        "transform_uri": Param(
            "",
            type="string",
            description="Images to predict in batch transform; empty: the whole dataset.",
        ),
        "initial_model_uri": Param(
            "",
            type="string",
            description="A previous model.tar.gz to continue from (incremental training; same "
            "num_layers, image_shape and classes). Empty: train from scratch.",
        ),
        "label_format": Param(
            "",
            type="string",
            enum=["", "multi-hot"],
            description="Manifests only: empty for one class per image, multi-hot for "
            "multi-label ('[1, 0, 1]' labels).",
        ),
        "validation_split": Param(
            0.2,
            type="number",
            minimum=0.01,
            maximum=0.9,
            description="Fraction of the images held out for validation (im2rec 1 - train_ratio).",
        ),
        "num_layers": Param(
            152,
            type="integer",
            enum=DEPTHS,
            description="ResNet depth; 20-110 are the small-image (CIFAR) nets.",
        ),
        "image_shape": Param(
            "3,224,224",
            type="string",
            pattern=r"^[13],\d+,\d+$",
            description="channels,height,width of the network input.",
        ),
        "epochs": Param(30, type="integer", minimum=1, description="Training epochs."),
        "mini_batch_size": Param(32, type="integer", minimum=1, description="Global batch size."),
        "learning_rate": Param(
            0.1, type="number", minimum=0, maximum=1, description="Initial learning rate."
        ),
        "optimizer": Param(
            "sgd", type="string", enum=["sgd", "adam", "rmsprop", "nag"], description="Optimizer."
        ),
        "hyperparameters": Param(
            {},
            type="object",
            description="Any other hyperparameter of the algorithm (momentum, weight_decay, "
            "lr_scheduler_step, ...), as strings. num_classes and num_training_samples are "
            "derived from the data.",
        ),
        "runner": Param(
            os.environ.get("VISION_PIPELINES_RUNNER", Runner.LOCAL.value),
            type="string",
            enum=[r.value for r in Runner],
            description="local: .venv-trainer on this machine; kubernetes: a GPU pod.",
        ),
        "trainer_image": Param(
            os.environ.get("VISION_PIPELINES_TRAINER_IMAGE", "vision-pipelines-trainer:latest"),
            type="string",
            description="Trainer image for runner=kubernetes.",
        ),
        "gpu_count": Param(
            1,
            type="integer",
            minimum=0,
            maximum=16,
            description="GPUs per training pod (runner=kubernetes).",
        ),
    },
) as dag:
    make_lst = LstGenerationOperator(
        task_id="make_lst",
        images_uri="{{ params.dataset_uri }}",
        output_uri=f"{RUN}/lists",
        validation_split="{{ params.validation_split }}",
        label_format="{{ params.label_format }}",
    )
    with TaskGroup("pack_recordio") as pack_recordio:
        for split in ("train", "validation"):
            RecordIOPackOperator(
                task_id=split,
                lst_uri=_lists(f"{split}_lst"),
                images_uri=_lists("image_root"),
                output_uri=f"{RUN}/recordio/{split}",
                class_names="{{ ti.xcom_pull(task_ids='make_lst')['classes'] | tojson }}",
                # All labels of a multi-label list; one-label lists pack as before.
                options=PackOptions(pack_label=True),
            )
    runner_args = {
        "runner": "{{ params.runner }}",
        "image": "{{ params.trainer_image }}",
        "gpus": "{{ params.gpu_count }}",
    }
    train = ContainerStepOperator(
        task_id="train",
        step="train",
        channels={
            "train": f"{RUN}/recordio/train",
            "validation": f"{RUN}/recordio/validation",
            "model": "{{ params.initial_model_uri }}",
        },
        output_uri=f"{RUN}/train",
        hyperparameters={
            "num_classes": _lists("num_classes"),
            "num_training_samples": _lists("num_training_samples"),
            "multi_label": _lists("multi_label"),
            **{
                k: "{{ params." + k + " }}"
                for k in (
                    "num_layers",
                    "image_shape",
                    "epochs",
                    "mini_batch_size",
                    "learning_rate",
                    "optimizer",
                )
            },
        },
        extra_hyperparameters="{{ params.hyperparameters | tojson }}",
        outlets=[MODEL],
        **runner_args,
    )
    evaluate = ContainerStepOperator(
        task_id="evaluate",
        step="evaluate",
        channels={"model": f"{RUN}/train/model.tar.gz", "validation": f"{RUN}/recordio/validation"},
        output_uri=f"{RUN}/evaluate",
        **runner_args,
    )
    batch_transform = ContainerStepOperator(
        task_id="batch_transform",
        step="transform",
        channels={
            "model": f"{RUN}/train/model.tar.gz",
            "data": "{{ params.transform_uri or params.dataset_uri }}",
        },
        output_uri=f"{RUN}/batch_transform",
        **runner_args,
    )
    make_lst >> pack_recordio >> train >> evaluate >> batch_transform
