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

from airflow.sdk import Param, TaskGroup

from operators.dag_builder import Tail, pipeline
from operators.data_prep import LstGenerationOperator, RecordIOPackOperator
from operators.form_schema import input_location
from operators.paths import data_root
from operators.pipeline import RUN, or_run_file, other_hyperparameters_param, xcom
from tasks.algorithms import get_algorithm
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
SINGLE_LABEL = "single-label"
# The pipeline's assets (image_classification_model, image_classification_dataset): the model's
# is updated when a model is promoted or rolled back to (its extra is the champion entry); with
# VISION_PIPELINES_IMAGE_CLASSIFICATION_ON_DATASET_CHANGE=true each update of the dataset's
# (docs/examples/dataset_producer.py) starts a retraining.


def prepare() -> Tail:
    """make_lst -> pack_recordio (in the training DAG and in its tuning DAG)."""
    make_lst = LstGenerationOperator(
        task_id="make_lst",
        images_uri="{{ params.dataset_uri }}",
        field_titles={"images_uri": "[Dataset] dataset_uri"},
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
    return Tail(
        after=[make_lst >> pack_recordio],
        train_channels={
            "train": f"{RUN}/recordio/train",
            "validation": f"{RUN}/recordio/validation",
        },
        train_hyperparameters={
            **{k: xcom("make_lst", k) for k in ("num_classes", "num_training_samples")},
            "multi_label": xcom("make_lst", "multi_label"),
        },
        evaluation_channels={
            "validation": or_run_file("params.eval_uri", "recordio/validation"),
        },
        data_uris=[
            f"{RUN}/lists/{name}" for name in ("train.lst", "validation.lst", "classes.json")
        ],
        profile_uris=[
            xcom(f"pack_recordio.{split}", "profile") for split in ("train", "validation")
        ],
    )


image_classification = pipeline(
    dag_id="image_classification",
    spec=SPEC,
    description="ResNet image classification: .lst -> RecordIO -> train -> evaluate -> transform",
    doc_md=__doc__,
    form=FORM_HYPERPARAMETERS,
    params={
        "dataset_uri": Param(
            f"file://{DATA_ROOT}/datasets/shapes",
            type="string",
            minLength=1,
            title="Dataset",
            description="Class-folder images (<dataset_uri>/<class name>/<image>.jpg|.png), or "
            "an augmented manifest (.manifest/.jsonl with source-ref and class; file:// or s3://).",
            **input_location(LstGenerationOperator.inputs["images_uri"]),
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
        "hyperparameters": other_hyperparameters_param(
            "Any other hyperparameter of the algorithm (momentum, weight_decay, "
            "lr_scheduler_step, ...), as strings. num_classes and num_training_samples are "
            "derived from the data."
        ),
    },
    prepare=prepare,
).dag
