"""The pre-trained model of image-classification-tf, found before any training pod starts."""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import fsspec
from airflow.sdk import Param

from operators.form_schema import input_location
from operators.pipeline import hyperparameter_param
from operators.run_record import RunStepOperator, pipeline_step
from operators.storage import remove_prefix, upload
from tasks.algorithms.image_classification_tf.hub.mirror import (
    MIRROR_ENV,
    available,
    locate,
    pack,
    stage_user_module,
)
from tasks.algorithms.image_classification_tf.hub.registry import get_model, registry
from tasks.algorithms.image_classification_tf.hub.trust import TRUSTED_ENV, staging_grant
from tasks.algorithms.image_classification_tf.hyperparameters import DEFAULT_MODEL_ID
from tasks.algorithms.spec import AlgorithmSpec
from tasks.data.layouts import Input
from tasks.staging import stage_in

log = logging.getLogger(__name__)
MODULE_ALLOWED = (
    "a TF2 hub module (a SavedModel folder or a .tar.gz of one, file:// or s3://) whose "
    f"SHA-256 this deployment pins (python -m tasks.hub digest; {TRUSTED_ENV} or a registry "
    "entry's sha256)"
)


class StagePretrainedModelOperator(RunStepOperator):
    """Resolves `model_id` through the registry and the offline locations (TF Hub cache, mirror):
    a mirror's `.tar.gz` is used where it is; a cached folder is packed under `output_uri` (a
    pod cannot see the worker's cache). An unknown or unavailable id fails here, naming what is
    available, before training starts. A module the person gave (`pretrained_uri`) is used
    instead when the deployment pins it, and refused here when it does not.

    :param model_id: a registry model id (templated).
    :param output_uri: where a packed module goes (templated).
    :param pretrained_uri: a hub module folder or .tar.gz to fine-tune instead (templated).
    """

    uri_fields = ("output_uri", "pretrained_uri")
    inputs = {"pretrained_uri": Input(MODULE_ALLOWED)}
    template_fields: Sequence[str] = ("model_id", "output_uri", "pretrained_uri")

    def __init__(
        self, *, model_id: str, output_uri: str, pretrained_uri: str = "", **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.model_id, self.output_uri, self.pretrained_uri = model_id, output_uri, pretrained_uri

    @pipeline_step
    def execute(self, context: Any) -> dict[str, Any]:
        model = get_model(self.model_id)
        if self.pretrained_uri.strip():
            return self._users_module(model.model_id, model.input_size)
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

    def _users_module(self, model_id: str, input_size: int) -> dict[str, Any]:
        """The person's module, checked against the deployment's pins before any GPU time (the
        trainer checks it again); no grant: it is trusted for its digest only."""
        uri = self.pretrained_uri.strip()
        title = self.field_titles.get("pretrained_uri", "pretrained_uri")
        with tempfile.TemporaryDirectory() as tmp:
            staged = stage_in(uri, Path(tmp) / "module")
            items = list(staged.iterdir())
            path = items[0] if len(items) == 1 and items[0].is_file() else staged.resolve()
            module = stage_user_module(path, Path(tmp) / "unpacked", f"{title} {uri}")
        self.log.info(
            "%s: pinned module %s, input %d px (%s)", uri, module.digest, input_size, model_id
        )
        return {"model_id": model_id, "model_uri": uri, "input_size": input_size, "grant": ""}


def model_id_param(spec: AlgorithmSpec) -> Param:
    """[Model id]: the registry's ids, those this deployment holds offline first and marked; the
    default is the reference's where it is offline, else the first one offline."""
    try:
        offline = available("feature_vector")
    except Exception:  # noqa: BLE001 - an unreachable mirror must not stop the DAG from parsing
        log.warning("could not list the offline hub models (%s)", MIRROR_ENV, exc_info=True)
        offline = []
    ids = sorted(registry(), key=lambda i: (i not in offline, i))
    default = DEFAULT_MODEL_ID if DEFAULT_MODEL_ID in offline or not offline else offline[0]
    return hyperparameter_param(
        spec,
        "model_id",
        default=default,
        enum=ids,
        values_display={
            i: f"{i} (offline)" if i in offline else f"{i} (not here: python -m tasks.hub mirror)"
            for i in ids
        },
        description="The pre-trained TF Hub model to fine-tune. Marked (offline): in this "
        "deployment's mirror or hub cache; the others must first be downloaded and added with "
        f"python -m tasks.hub mirror <model id> <download> ({MIRROR_ENV}).",
    )


def pretrained_model_param() -> Param:
    """[Pre-trained model]: the person's own hub module, instead of the model id's."""
    return Param(
        None,
        type=["null", "string"],
        title="Pre-trained model",
        description=f"Fine-tune this module instead of the model id's: {MODULE_ALLOWED}. The "
        "model id still sets the input size. Empty: the model id's module.",
        **input_location(Input(MODULE_ALLOWED)),
    )
