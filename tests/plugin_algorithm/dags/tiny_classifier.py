"""
### tiny_classifier

The test-only fourth algorithm: class folders -> `dataset` -> the standard tail.
"""

from __future__ import annotations

from airflow.sdk import Param

from operators.dag_builder import Tail, pipeline
from operators.data_prep import ClassFolderDatasetOperator
from operators.pipeline import RUN, or_run_file, xcom
from tasks.algorithms import get_algorithm


def prepare() -> Tail:
    """dataset (in the training DAG and in its tuning DAG)."""
    dataset = ClassFolderDatasetOperator(
        task_id="dataset",
        dataset_uri="{{ params.dataset_uri }}",
        validation_uri="",
        validation_split_ratio="0.25",
        output_uri=f"{RUN}/data",
    )
    return Tail(
        after=[dataset],
        train_channels={
            "training": xcom("dataset", "training_uri"),
            "validation": xcom("dataset", "validation_uri"),
        },
        train_hyperparameters={"num_classes": xcom("dataset", "num_classes")},
        evaluation_channels={"validation": or_run_file("params.eval_uri", "data/validation")},
        data_uris=[f"{RUN}/data/class_folders.json"],
    )


tiny_classifier = pipeline(
    dag_id="tiny_classifier",
    spec=get_algorithm("tiny-classifier"),
    description="A tiny classifier: class folders -> train -> evaluate -> transform",
    doc_md=__doc__,
    form=("epochs", "learning_rate"),
    params={"dataset_uri": Param(type="string", minLength=1, title="Dataset")},
    prepare=prepare,
).dag
