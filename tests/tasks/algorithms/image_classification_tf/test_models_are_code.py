"""A SavedModel is code: the attack of hardening item 1 (a hub module in the `model` channel
whose graph reads one file and writes another) through the command lines. Before the fix, the
module was loaded and called: the file was written and the model that came out was signed."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow as tf

from tasks.algorithms.image_classification_tf.hub.registry import EXTRA_REGISTRY_ENV, get_model
from tasks.algorithms.image_classification_tf.hub.trust import TRUSTED_ENV, module_digest
from tasks.algorithms.image_classification_tf.hyperparameters import DEFAULT_MODEL_ID
from tasks.artifact import extract_artifact
from tasks.contract import EXIT_BAD_INPUT
from tasks.saved_model_ops import UnsafeModelError, check_saved_model
from tests.tasks.algorithms.image_classification_tf.conftest import make_ml_root
from tests.tasks.algorithms.image_classification_tf.hub_modules import (
    save_payload_module,
    save_smuggler_module,
    tar_module,
)

ROOT = Path(__file__).resolve().parents[4]
HP = {"model_id": DEFAULT_MODEL_ID, "epochs": "1", "batch_size": "8"}


@pytest.fixture(scope="module")
def payload(tmp_path_factory):
    root = tmp_path_factory.mktemp("payload")
    secret = root / "secret.txt"
    secret.write_text("the worker's secret\n")
    stolen = root / "stolen.txt"
    module = save_payload_module(root / "module", read=str(secret), write=str(stolen))
    return {"module": module, "tar": tar_module(module, root / "module.tar.gz"), "stolen": stolen}


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**__import__("os").environ, **(env or {})},
    )


def train(ml, env: dict | None = None) -> subprocess.CompletedProcess:
    return run(
        "tasks.train", "--algorithm", "image-classification-tf", "--ml-root", str(ml.root), env=env
    )


@pytest.mark.parametrize("form", ["module", "tar"])
def test_an_unpinned_module_in_the_model_channel_is_refused_before_it_runs(
    payload, shapes32, tmp_path, form
):
    ml = make_ml_root(tmp_path / "ml", shapes32, HP, model=payload[form])
    done = train(ml)
    assert done.returncode == EXIT_BAD_INPUT, done.stderr[-2000:]
    reason = ml.failure_path.read_text().strip()
    assert "a SavedModel this deployment does not trust" in reason
    assert module_digest(payload["module"]) in reason and TRUSTED_ENV in reason
    assert "\n" not in reason and "Traceback" not in done.stderr
    assert not payload["stolen"].exists()
    assert not ml.model_archive.exists()


def test_a_pinned_module_with_file_ops_is_refused_by_the_op_allow_list(payload, shapes32, tmp_path):
    ml = make_ml_root(tmp_path / "ml", shapes32, HP, model=payload["tar"])
    done = train(ml, env={TRUSTED_ENV: module_digest(payload["module"])})
    assert done.returncode == EXIT_BAD_INPUT, done.stderr[-2000:]
    reason = ml.failure_path.read_text().strip()
    assert "ReadFile" in reason and "WriteFile" in reason and "refused before loading" in reason
    assert "outside the allow-list" in reason
    assert not payload["stolen"].exists()


def test_packaging_a_classifier_with_file_ops_is_refused(payload, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\n")
    done = run(
        "tasks.hub", "package", DEFAULT_MODEL_ID, "--labels", str(labels),
        "--output", str(tmp_path / "model.tar.gz"), "--model", str(payload["module"]),
    )  # fmt: skip
    assert done.returncode == EXIT_BAD_INPUT
    assert "ReadFile" in done.stderr and "Traceback" not in done.stderr
    assert not payload["stolen"].exists() and not (tmp_path / "model.tar.gz").exists()


def test_a_cached_module_that_is_not_the_pinned_one_is_refused(hub_cache, shapes32, tmp_path):
    entry = get_model(DEFAULT_MODEL_ID)
    registry = tmp_path / "registry.json"
    registry.write_text(
        json.dumps(
            {
                "models": [
                    {
                        "model_id": entry.model_id,
                        "feature_vector": entry.feature_vector,
                        "input_size": entry.input_size,
                        "sha256": {"feature_vector": "0" * 64},
                    }
                ]
            }
        )
    )
    ml = make_ml_root(tmp_path / "ml", shapes32, HP)
    done = train(ml, env={EXTRA_REGISTRY_ENV: str(registry)})
    assert done.returncode == EXIT_BAD_INPUT, done.stderr[-2000:]
    assert "but the model registry pins " + "0" * 64 in ml.failure_path.read_text()


def test_the_registry_pin_admits_a_module_in_the_model_channel(
    feature_vector_tar, trusted_test_module, shapes32, tmp_path, monkeypatch
):
    entry = get_model(DEFAULT_MODEL_ID)
    registry = tmp_path / "registry.json"
    registry.write_text(
        json.dumps(
            {
                "models": [
                    {
                        "model_id": "our-own",
                        "feature_vector": entry.feature_vector,
                        "input_size": 32,
                        "sha256": {"feature_vector": trusted_test_module},
                    }
                ]
            }
        )
    )
    ml = make_ml_root(tmp_path / "ml", shapes32, HP, model=feature_vector_tar)
    done = train(ml, env={EXTRA_REGISTRY_ENV: str(registry), TRUSTED_ENV: ""})
    assert done.returncode == 0, done.stderr[-2000:]
    assert ml.model_archive.is_file()


def test_only_the_archive_the_deployment_staged_is_trusted_by_its_grant(
    payload, feature_vector_tar, shapes32, tmp_path, monkeypatch
):
    """The pipeline's stage_model task grants the archive it staged from the mirror (its SHA-256,
    HMAC-signed with the deployment's key). A grant does not carry over to another archive, and
    one a user makes without the key is worthless."""
    from tasks.algorithms.image_classification_tf.hub.trust import (
        GRANT_HYPERPARAMETER,
        staging_grant,
    )

    monkeypatch.setenv(TRUSTED_ENV, "")  # nothing pinned: only the grant can trust a module
    with open(feature_vector_tar, "rb") as f:
        granted = staging_grant(hashlib.file_digest(f, "sha256").hexdigest())
    forged = granted.split(":")[0] + ":" + "0" * 64
    for name, model, grant, code in (
        ("staged", feature_vector_tar, granted, 0),
        ("other", payload["tar"], granted, EXIT_BAD_INPUT),
        ("forged", feature_vector_tar, forged, EXIT_BAD_INPUT),
    ):
        ml = make_ml_root(
            tmp_path / name, shapes32, {**HP, GRANT_HYPERPARAMETER: grant}, model=model
        )
        done = train(ml, env={TRUSTED_ENV: ""})
        assert done.returncode == code, (name, done.stderr[-2000:])
        if code:
            assert "does not trust" in ml.failure_path.read_text()
    assert not payload["stolen"].exists()


# Hardening, third pass: the walls by construction.


def _save_v2_to(target: str):
    """SaveV2 of one tensor to `target` (a checkpoint write outside TensorFlow's saver)."""

    def save():
        tf.raw_ops.SaveV2(
            prefix=target, tensor_names=["x"], shape_and_slices=[""], tensors=[tf.ones([2])]
        )

    return save


def _bypasses(root: Path) -> dict:
    """The modules of the audit that passed the op deny-list, and one with any dataset op."""
    target = str(root / "written")

    def matching_files_cache():
        files = tf.raw_ops.MatchingFilesDataset(patterns=tf.constant([str(root / "*")]))
        names = tf.data.experimental.from_variant(files, tf.TensorSpec([], tf.string))
        return names.cache(target).reduce(tf.constant(0), lambda n, _: n + 1)

    def dataset_from_graph():
        return tf.raw_ops.DatasetFromGraph(graph_def=tf.constant(b"\n\x00"))

    @tf.function
    def my__traced_save_helper():  # its traced name contains "_traced_save_"
        _save_v2_to(target)()

    @tf.function
    def _traced_save():  # its traced name is exactly TensorFlow's: __inference__traced_save_N
        _save_v2_to(target)()

    return {
        "MatchingFilesDataset": matching_files_cache,
        "DatasetFromGraph": dataset_from_graph,
        "SaveV2 in function __inference_my__traced_save_helper": my__traced_save_helper,
        "SaveV2 in function __inference__traced_save": _traced_save,
        "RangeDataset": lambda: tf.data.Dataset.range(3).reduce(
            tf.constant(0, tf.int64), lambda total, n: total + n
        ),
    }


@pytest.mark.parametrize(
    "phrase",
    [
        "MatchingFilesDataset",
        "DatasetFromGraph",
        "SaveV2 in function __inference_my__traced_save_helper",
        "SaveV2 in function __inference__traced_save",
        "RangeDataset",
    ],
)
def test_the_op_allow_list_refuses_the_deny_list_bypasses_and_any_dataset_op(tmp_path, phrase):
    module = save_smuggler_module(tmp_path / "module", _bypasses(tmp_path)[phrase])
    with pytest.raises(UnsafeModelError) as refused:
        check_saved_model(module, "channel 'model'")
    assert phrase in str(refused.value) and "outside the allow-list" in str(refused.value)
    assert not (tmp_path / "written").exists()


def test_the_allow_list_admits_the_hub_module_and_the_models_we_train(
    feature_vector, shapes32, hub_cache, tmp_path
):
    """The embedded hub module, and transfer learning's model.tar.gz (the fine-tuned backbone
    and the served model); image classification's and segmentation's models are loaded through
    the same check by their serving tests."""
    check_saved_model(feature_vector, "hub module")
    ml = make_ml_root(tmp_path / "ml", shapes32, {**HP, "train_only_top_layer": "False"})
    done = train(ml)
    assert done.returncode == 0, done.stderr[-2000:]
    extracted = extract_artifact(ml.model_archive, tmp_path / "model")
    for folder in (extracted.root / "saved_model", extracted.root / "backbone"):
        check_saved_model(folder, str(folder))


def test_the_model_channel_is_loaded_from_the_copy_that_was_checked(
    payload, feature_vector, tmp_path, monkeypatch
):
    """The swap of the audit, through a hook instead of timing: right after the check, the
    channel's files become the payload's. The loader reads the checked copy."""
    from tasks.algorithms.image_classification_tf import network
    from tasks.algorithms.image_classification_tf.hub.mirror import stage_user_module

    channel = tmp_path / "channel"
    shutil.copytree(feature_vector, channel)
    monkeypatch.setenv(TRUSTED_ENV, module_digest(feature_vector))
    checked = network.check_saved_model

    def check_then_swap(folder, source):
        checked(folder, source)
        shutil.rmtree(channel)
        shutil.copytree(payload["module"], channel)

    monkeypatch.setattr(network, "check_saved_model", check_then_swap)
    trusted = stage_user_module(channel, tmp_path / "work", "channel 'model'")
    module = network.load_module(trusted)
    module(tf.zeros([1, 32, 32, 3]))  # the payload's call would copy the secret
    assert not payload["stolen"].exists()
    assert (channel / "saved_model.pb").read_bytes() == (
        payload["module"] / "saved_model.pb"
    ).read_bytes()  # the swap happened
