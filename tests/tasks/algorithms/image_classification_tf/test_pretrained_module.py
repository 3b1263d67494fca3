"""`python -m tasks.hub pretrain`: the embedded deployment's module is made here, mirrored under
our registry id and pinned, so that the pipeline finds it offline and trusts it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf

from tasks.algorithms.image_classification_tf.hub.mirror import MIRROR_ENV, fetch_module, locate
from tasks.algorithms.image_classification_tf.hub.pretrain import FEATURES, INPUT_SIZE, MODEL_ID
from tasks.algorithms.image_classification_tf.hub.registry import EXTRA_REGISTRY_ENV, get_model

ROOT = Path(__file__).resolve().parents[4]


def test_pretrain_mirrors_and_pins_a_module_the_pipeline_finds(tmp_path, monkeypatch):
    registry = tmp_path / "registry.json"
    other = {"model_id": "kept-entry", "feature_vector": "x/kept", "input_size": 64}
    registry.write_text(json.dumps({"models": [other]}))
    command = [sys.executable, "-m", "tasks.hub", "pretrain", "--to", f"file://{tmp_path}/m"]
    command += ["--registry", str(registry), "--epochs", "1", "--per-class", "4"]
    for _ in range(2):  # a rerun replaces its entry and its archive
        done = subprocess.run(
            command,
            cwd=ROOT,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert done.returncode == 0, done.stderr[-3000:]
    uri = f"file://{tmp_path}/m/{MODEL_ID}/feature_vector.tar.gz"
    assert done.stdout.strip() == f"{MODEL_ID}: {uri} (pinned in {registry})"
    models = json.loads(registry.read_text())["models"]
    assert [m["model_id"] for m in models] == ["kept-entry", MODEL_ID]

    monkeypatch.setenv(EXTRA_REGISTRY_ENV, str(registry))
    monkeypatch.setenv(MIRROR_ENV, f"file://{tmp_path}/m")
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "no-cache"))
    assert get_model(MODEL_ID).input_size == INPUT_SIZE
    assert locate(MODEL_ID) == uri
    module = fetch_module(MODEL_ID, "feature_vector", tmp_path / "fetched")  # the pin holds
    assert module.digest == models[1]["sha256"]["feature_vector"]
    features = tf.saved_model.load(str(module.folder))(
        tf.constant(np.zeros((2, INPUT_SIZE, INPUT_SIZE, 3), np.float32))
    )
    assert features.shape == (2, FEATURES)
