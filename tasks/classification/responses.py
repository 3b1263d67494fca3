"""A classifier's real-time responses: the batch-transform rows of tasks.classification.prediction
for each image, as the reference's endpoint returns them."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tasks.classification.prediction import predict
from tasks.serving.responses import REQUEST, Body, Responses

JSON, JSONLINES = "application/json", "application/jsonlines"
VERBOSE = ";verbose"


def respond(model, images: list[bytes], accept: str) -> list[Body]:
    """application/json: the list of class probabilities; application/jsonlines: one line
    {"prediction": [...]}; `;verbose`: also "labels" and "predicted_label" (an object)."""
    verbose = accept.endswith(VERBOSE)
    named = ((REQUEST, image) for image in images)
    rows = predict(
        model, named, total=len(images), output=Path(os.devnull), verbose=verbose, progress=False
    )
    bodies = []
    for row in rows:
        del row["source-ref"]
        if verbose:
            del row["prediction"]
        answer = row if verbose or accept == JSONLINES else row["prediction"]
        text = json.dumps(answer) + ("\n" if accept.startswith(JSONLINES) else "")
        bodies.append((text.encode(), accept))
    return bodies


RESPONSES = Responses(
    accept=(JSON, JSONLINES, JSON + VERBOSE, JSONLINES + VERBOSE), respond=respond
)
