"""A SavedModel is code: the attack of hardening item 1 (a hub module in the `model` channel
whose graph reads one file and writes another) through the command lines. Before the fix, the
module was loaded and called: the file was written and the model that came out was signed."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tasks.algorithms.image_classification_tf.hub.registry import EXTRA_REGISTRY_ENV, get_model
from tasks.algorithms.image_classification_tf.hub.trust import TRUSTED_ENV, module_digest
from tasks.algorithms.image_classification_tf.hyperparameters import DEFAULT_MODEL_ID
from tasks.contract import EXIT_BAD_INPUT
from tests.tasks.algorithms.image_classification_tf.conftest import make_ml_root
from tests.tasks.algorithms.image_classification_tf.hub_modules import (
    save_payload_module,
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


def test_a_pinned_module_with_file_ops_is_refused_by_the_op_deny_list(payload, shapes32, tmp_path):
    ml = make_ml_root(tmp_path / "ml", shapes32, HP, model=payload["tar"])
    done = train(ml, env={TRUSTED_ENV: module_digest(payload["module"])})
    assert done.returncode == EXIT_BAD_INPUT, done.stderr[-2000:]
    reason = ml.failure_path.read_text().strip()
    assert "ReadFile" in reason and "WriteFile" in reason and "refused before loading" in reason
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
