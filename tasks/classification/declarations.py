"""What every classifier declares alike in its spec: evaluation and batch transform read the
same channels and run the shared classification code (plain data, no TensorFlow)."""

from __future__ import annotations

from tasks.algorithms.spec import Channels
from tasks.contract import Step

SERVING_CHANNELS = {
    Step.EVALUATE: Channels(required=("model", "validation"), optional=("champion",)),
    Step.TRANSFORM: Channels(required=("model", "data")),
}
"""The channels of evaluate (the champion re-scored when given) and batch transform."""
SERVING_ENTRY_POINTS = {
    "evaluate": "tasks.classification.evaluation:evaluate",
    "predict": "tasks.classification.prediction:predict",
    "load_predictor": "tasks.classification.serving:load_predictor",
    "responses": "tasks.classification.responses:RESPONSES",
}
"""Evaluation, batch prediction, loading of a classifier's SavedModel and its real-time
responses (tasks.serve)."""
