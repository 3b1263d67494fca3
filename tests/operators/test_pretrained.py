"""The transfer-learning form's pre-trained model: which ids this deployment holds offline (the
form's default and drop-down), and a person's own module, refused before training unless pinned."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from operators.pretrained import StagePretrainedModelOperator, model_id_param
from operators.refusals import RunRefused
from tasks.algorithms import get_algorithm
from tasks.algorithms.image_classification_tf.hub.mirror import MIRROR_ENV, pack
from tasks.algorithms.image_classification_tf.hub.registry import EXTRA_REGISTRY_ENV
from tasks.algorithms.image_classification_tf.hub.trust import TRUSTED_ENV, module_digest
from tasks.algorithms.image_classification_tf.hyperparameters import DEFAULT_MODEL_ID

SPEC = get_algorithm("image-classification-tf")
OURS = "example-deployment-shapes-cnn-1"


def _module(folder: Path, content: bytes = b"graph") -> Path:
    """A SavedModel's files (contents are not loaded here: only found, packed and digested)."""
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(content)
    (folder / "variables" / "variables.index").write_bytes(b"index")
    return folder


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """A deployment with no hub cache and an empty mirror; `add(model_id)` mirrors a module."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    monkeypatch.setenv(MIRROR_ENV, f"file://{mirror}")
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "no-cache"))
    monkeypatch.delenv(EXTRA_REGISTRY_ENV, raising=False)

    def add(model_id: str) -> None:
        (mirror / model_id).mkdir()
        pack(_module(tmp_path / f"module-{model_id}"), mirror / model_id / "feature_vector.tar.gz")

    return add


def _our_registry(tmp_path, monkeypatch) -> None:
    registry = tmp_path / "registry.json"
    entry = {"model_id": OURS, "feature_vector": f"ours/{OURS}", "input_size": 32}
    registry.write_text(json.dumps({"models": [entry]}))
    monkeypatch.setenv(EXTRA_REGISTRY_ENV, str(registry))


def test_the_form_defaults_to_a_model_held_offline_and_marks_which_are(
    offline, tmp_path, monkeypatch
):
    _our_registry(tmp_path, monkeypatch)
    offline(OURS)
    param = model_id_param(SPEC)
    assert param.value == OURS
    enum = param.schema["enum"]
    assert enum[0] == OURS and DEFAULT_MODEL_ID in enum
    shown = param.schema["values_display"]
    assert shown[OURS] == f"{OURS} (offline)"
    assert shown[DEFAULT_MODEL_ID] == f"{DEFAULT_MODEL_ID} (not here: python -m tasks.hub mirror)"


def test_the_reference_default_stays_when_it_is_offline_or_nothing_is(offline):
    assert model_id_param(SPEC).value == DEFAULT_MODEL_ID  # nothing offline: how to add it shown
    offline("tensorflow-ic-efficientnet-b0-classification-1")
    offline(DEFAULT_MODEL_ID)
    param = model_id_param(SPEC)
    assert param.value == DEFAULT_MODEL_ID
    assert param.schema["values_display"][DEFAULT_MODEL_ID].endswith("(offline)")


def _stage(tmp_path, pretrained_uri: str) -> dict:
    return StagePretrainedModelOperator(
        task_id="stage_model",
        model_id=DEFAULT_MODEL_ID,
        pretrained_uri=pretrained_uri,
        field_titles={"pretrained_uri": "[Pre-trained model] pretrained_model_uri"},
        output_uri=f"file://{tmp_path}/run/pretrained",
    ).execute({})


@pytest.mark.parametrize("packed", [False, True], ids=["folder", "tar.gz"])
def test_a_persons_module_is_used_only_when_the_deployment_pins_it(
    offline, tmp_path, monkeypatch, packed
):
    folder = _module(tmp_path / "mine", b"my graph")
    uri = f"file://{folder}"
    if packed:
        pack(folder, tmp_path / "mine.tar.gz")
        uri = f"file://{tmp_path}/mine.tar.gz"
    monkeypatch.setenv(TRUSTED_ENV, "0" * 64)
    with pytest.raises(RunRefused) as refused:
        _stage(tmp_path, uri)
    message = str(refused.value)
    assert message.startswith(f"[Pre-trained model] pretrained_model_uri {uri}: a SavedModel")
    assert module_digest(folder) in message and TRUSTED_ENV in message
    # The reference id is not offline here: a person's module needs no mirror.
    monkeypatch.setenv(TRUSTED_ENV, module_digest(folder))
    staged = _stage(tmp_path, uri)
    assert staged["model_uri"] == uri and staged["grant"] == ""
    assert staged["input_size"] == 224


def test_a_missing_module_names_the_field(offline, tmp_path):
    uri = f"file://{tmp_path}/nowhere.tar.gz"
    with pytest.raises(RunRefused, match=r"^\[Pre-trained model\] pretrained_model_uri "):
        _stage(tmp_path, uri)


def test_a_tarball_with_no_saved_model_is_refused(offline, tmp_path):
    bad = tmp_path / "bad.tar.gz"
    (tmp_path / "readme.txt").write_text("not a model")
    with tarfile.open(bad, "w:gz") as tar:
        tar.add(tmp_path / "readme.txt", arcname="readme.txt")
    with pytest.raises(RunRefused, match="not a TF2 SavedModel"):
        _stage(tmp_path, f"file://{bad}")
