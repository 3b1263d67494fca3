"""Fixtures of the trainer-side task tests (TensorFlow imported only by the fixtures that
need it: the data tests under tests/tasks/data run in the Airflow environment)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def feature_vector(tmp_path_factory) -> Path:
    """A tiny feature vector hub module (random weights), as a SavedModel folder."""
    from tests.tasks.algorithms.image_classification_tf.hub_modules import save_feature_vector

    return save_feature_vector(tmp_path_factory.mktemp("hub") / "feature_vector")


@pytest.fixture
def hub_cache(feature_vector, tmp_path, monkeypatch) -> Path:
    """TFHUB_CACHE_DIR holding the tiny module as the default model id's feature vector."""
    from tasks.algorithms.image_classification_tf.hub.registry import get_model
    from tasks.algorithms.image_classification_tf.hyperparameters import DEFAULT_MODEL_ID
    from tests.tasks.algorithms.image_classification_tf.hub_modules import into_cache

    cache = tmp_path / "tfhub-cache"
    into_cache(feature_vector, cache, get_model(DEFAULT_MODEL_ID).feature_vector)
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(cache))
    monkeypatch.delenv("VISION_PIPELINES_TFHUB_MIRROR", raising=False)
    return cache
