"""
### image_classification_tf

Fine-tunes a pre-trained TF Hub model (`model_id`, from the registry: `python -m tasks.hub list`)
on a class-folder dataset: `dataset` (every image decodes, no stray files or empty classes, at
least 2 classes; the report kept as `data/class_folders.json`; a copy of the training and
validation images under the run, validation a stratified split unless given) -> `stage_model`
(the pre-trained model from the offline mirror or hub cache, or the [Pre-trained model] the
person gave, if this deployment pins it) -> `train` -> `evaluate`
(accuracy, top-5, per-class metrics, confusion matrix; the champion re-scored on the same data)
-> `gate` -> `promote` -> `batch_transform` (JSON Lines probabilities).

Everything a run writes goes under `<output_uri>/run=<logical date>/` (`run=<run id>` without
one). `runner=local` runs the GPU steps in `.venv-trainer` on this machine; `runner=kubernetes`
as pods of the trainer image.
"""

from __future__ import annotations

from airflow.sdk import Param

from operators.dag_builder import Tail, pipeline
from operators.data_prep import ClassFolderDatasetOperator
from operators.form_schema import input_location
from operators.paths import data_root
from operators.pipeline import RUN, or_run_file, other_hyperparameters_param, xcom
from operators.pretrained import (
    StagePretrainedModelOperator,
    model_id_param,
    pretrained_model_param,
)
from tasks.algorithms import get_algorithm
from tasks.algorithms.image_classification_tf.hub.trust import GRANT_HYPERPARAMETER

SPEC = get_algorithm("image-classification-tf")
DATA_ROOT = data_root()
FORM_HYPERPARAMETERS = (
    "model_id",
    "epochs",
    "batch_size",
    "learning_rate",
    "optimizer",
    "train_only_top_layer",
)


def prepare() -> Tail:
    """The dataset and the TF Hub module staged (in the training DAG and in its tuning DAG)."""
    dataset = ClassFolderDatasetOperator(
        task_id="dataset",
        dataset_uri="{{ params.dataset_uri }}",
        validation_uri="{{ params.validation_uri or '' }}",
        field_titles={
            "dataset_uri": "[Dataset] dataset_uri",
            "validation_uri": "[Validation dataset] validation_uri",
        },
        validation_split_ratio="{{ params.validation_split_ratio }}",
        output_uri=f"{RUN}/data",
    )
    stage_model = StagePretrainedModelOperator(
        task_id="stage_model",
        model_id="{{ params.model_id }}",
        pretrained_uri="{{ params.pretrained_model_uri or '' }}",
        field_titles={"pretrained_uri": "[Pre-trained model] pretrained_model_uri"},
        output_uri=f"{RUN}/pretrained",
    )
    return Tail(
        after=[dataset, stage_model],
        train_channels={
            "training": xcom("dataset", "training_uri"),
            "validation": xcom("dataset", "validation_uri"),
            "model": "{{ params.initial_model_uri or "
            "ti.xcom_pull(task_ids='stage_model')['model_uri'] }}",
        },
        train_hyperparameters={
            "num_classes": xcom("dataset", "num_classes"),
            GRANT_HYPERPARAMETER: xcom("stage_model", "grant"),
        },
        evaluation_channels={"validation": or_run_file("params.eval_uri", "data/validation")},
        data_uris=[f"{RUN}/data/class_folders.json"],
        profile_uris=[xcom("dataset", "profile")],
    )


image_classification_tf = pipeline(
    dag_id="image_classification_tf",
    spec=SPEC,
    description="TF Hub transfer learning: class folders -> fine-tune -> evaluate -> transform",
    doc_md=__doc__,
    form=FORM_HYPERPARAMETERS,
    params={
        "dataset_uri": Param(
            f"file://{DATA_ROOT}/datasets/shapes",
            type="string",
            minLength=1,
            title="Dataset",
            description="Class folders: <dataset_uri>/<class name>/<image>.jpg|.jpeg|.png "
            "(file:// or s3://); class index = sorted folder name.",
            **input_location(ClassFolderDatasetOperator.inputs["dataset_uri"]),
        ),
        "validation_uri": Param(
            None,
            type=["null", "string"],
            title="Validation dataset",
            description="Separate validation class folders (same class names). Empty: a "
            "stratified split of the dataset.",
            **input_location(ClassFolderDatasetOperator.inputs["validation_uri"]),
        ),
        "validation_split_ratio": Param(
            0.2,
            type="number",
            exclusiveMinimum=0,
            exclusiveMaximum=1,
            title="Validation fraction",
            description="Fraction of each class held out for validation when no validation "
            "dataset is given.",
        ),
        "model_id": model_id_param(SPEC),
        "pretrained_model_uri": pretrained_model_param(),
        "initial_model_uri": Param(
            None,
            type=["null", "string"],
            title="Start from model",
            description="A model.tar.gz of this pipeline to continue from (incremental "
            "training; same model_id and classes). Empty: fine-tune model_id.",
        ),
        "hyperparameters": other_hyperparameters_param(
            "Any other hyperparameter of the algorithm (dropout_rate, "
            "label_smoothing, augmentation, early_stopping, ...), as strings. num_classes is "
            "derived from the data."
        ),
    },
    prepare=prepare,
).dag
