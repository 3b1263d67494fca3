"""The pre-trained model of image-classification-tf, found before any training pod starts."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import fsspec

from operators.run_record import RunStepOperator, pipeline_step
from operators.storage import remove_prefix, upload
from tasks.algorithms.image_classification_tf.hub.mirror import locate, pack
from tasks.algorithms.image_classification_tf.hub.registry import get_model
from tasks.algorithms.image_classification_tf.hub.trust import staging_grant


class StagePretrainedModelOperator(RunStepOperator):
    """Resolves `model_id` through the registry and the offline locations (TF Hub cache, mirror):
    a mirror's `.tar.gz` is used where it is; a cached folder is packed under `output_uri` (a
    pod cannot see the worker's cache). An unknown or unavailable id fails here, naming what is
    available, before training starts.

    :param model_id: a registry model id (templated).
    :param output_uri: where a packed module goes (templated).
    """

    uri_fields = ("output_uri",)
    template_fields: Sequence[str] = ("model_id", "output_uri")

    def __init__(self, *, model_id: str, output_uri: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model_id, self.output_uri = model_id, output_uri

    @pipeline_step
    def execute(self, context: Any) -> dict[str, Any]:
        model = get_model(self.model_id)
        found = locate(model.model_id, "feature_vector")
        if "://" in found:
            model_uri = found
        else:
            out = self.output_uri.rstrip("/")
            remove_prefix(out)
            with tempfile.TemporaryDirectory() as tmp:
                archive = Path(tmp) / "feature_vector.tar.gz"
                pack(Path(found), archive)
                model_uri = upload(archive, f"{out}/{model.model_id}.tar.gz")
        self.log.info("%s (%s): %s", model.model_id, model.feature_vector, model_uri)
        with fsspec.open(model_uri, "rb") as f:
            sha256 = hashlib.file_digest(f, "sha256").hexdigest()
        return {
            "model_id": model.model_id,
            "model_uri": model_uri,
            "input_size": model.input_size,
            # The trainer trusts this archive (and only it) as the deployment's module.
            "grant": staging_grant(sha256),
        }
