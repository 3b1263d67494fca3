"""
### land_new_images (example producer)

Copies a batch of new labelled images (class sub-folders) into the training dataset, then marks
the `image_classification_dataset` asset as updated. With
`VISION_PIPELINES_IMAGE_CLASSIFICATION_ON_DATASET_CHANGE=true` that update starts an
`image_classification` retraining run (which then goes through the champion/challenger gate).

Copy this file into the DAGs folder and adapt the copy step to how your data arrives; any task,
in any DAG, that lists the asset in its `outlets` triggers the retraining the same way.
"""

from __future__ import annotations

from datetime import datetime, timezone

from airflow.sdk import DAG, Asset, ObjectStoragePath, Param, task

DATASET_ASSET = Asset(name="image_classification_dataset")

with DAG(
    dag_id="land_new_images",
    doc_md=__doc__,
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    params={
        "incoming_uri": Param(type="string", description="Folder of new class sub-folders."),
        "dataset_uri": Param(type="string", description="The training dataset to add them to."),
    },
):

    @task(outlets=[DATASET_ASSET])
    def land(params: dict | None = None, outlet_events=None) -> int:
        incoming = ObjectStoragePath(params["incoming_uri"])
        dataset = ObjectStoragePath(params["dataset_uri"])
        copied = 0
        for source in incoming.rglob("*"):
            if source.is_file():
                target = dataset / source.relative_to(incoming)
                target.parent.mkdir(parents=True, exist_ok=True)
                source.copy(target)
                copied += 1
        outlet_events[DATASET_ASSET].extra = {"dataset_uri": str(dataset), "added": copied}
        return copied

    land()
