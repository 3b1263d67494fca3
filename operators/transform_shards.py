"""Batch transform in shards (tasks/transform_shards.py): split before the mapped container
steps, join after them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from operators.run_record import RunStepOperator, pipeline_step
from tasks.contract import PREDICTIONS
from tasks.transform_shards import join, shard_uri, split


class SplitTransformOperator(RunStepOperator):
    """Lists batch transform's input once (no image is downloaded), writes one listing per shard
    under `output_uri` (an earlier attempt's shards and predictions removed first) and returns
    the arguments of the mapped container steps, one per shard: channels and output URI, the
    listings passed by reference.

    :param data_uri: the images to predict: a folder, a `.lst` or a manifest (templated).
    :param model_uri: the model that predicts (templated).
    :param output_uri: the transform's outputs; shard i writes under `shards/<i>` (templated).
    :param shards: how many shards, at most MAX_SHARDS and the number of inputs (templated).
    """

    uri_fields = ("data_uri", "model_uri", "output_uri")
    template_fields: Sequence[str] = ("data_uri", "model_uri", "output_uri", "shards")

    def __init__(
        self, *, data_uri: str, model_uri: str, output_uri: str, shards: int | str = 1, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.data_uri, self.model_uri, self.output_uri = data_uri, model_uri, output_uri
        self.shards = shards

    @pipeline_step
    def execute(self, context: Any) -> list[dict[str, Any]]:
        listings = split(self.data_uri, self.output_uri, int(self.shards))
        return [
            {
                "channels": {"model": self.model_uri, "data": listing},
                "output_uri": shard_uri(self.output_uri, index),
            }
            for index, listing in enumerate(listings)
        ]


class JoinTransformOperator(RunStepOperator):
    """One `predictions.jsonl` in the input's order from the shards' (and their masks beside
    it), as one transform of the whole input writes them.

    :param output_uri: the transform's outputs, with the shards under `shards/` (templated).
    :param split_task_id: the task that made the shards (their count is its result's length).
    """

    template_fields: Sequence[str] = ("output_uri",)

    def __init__(self, *, output_uri: str, split_task_id: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.output_uri, self.split_task_id = output_uri, split_task_id

    @pipeline_step
    def execute(self, context: Any) -> dict[str, Any]:
        shards = context["ti"].xcom_pull(task_ids=self.split_task_id)
        lines = join(self.output_uri, len(shards))
        predictions = f"{self.output_uri.rstrip('/')}/{PREDICTIONS}"
        self.log.info("joined %d shard(s): %d predictions in %s", len(shards), lines, predictions)
        return {"output_uri": self.output_uri, "predictions": predictions, "lines": lines}
