"""The pre-trained model registry and the offline locations (no TensorFlow, nothing downloaded)."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tasks.algorithms.image_classification_tf.hub.mirror import (
    HubModelNotFoundError,
    fetch,
    locate,
    mirror,
)
from tasks.algorithms.image_classification_tf.hub.registry import (
    EXTRA_REGISTRY_ENV,
    UnknownModelError,
    get_model,
    registry,
)
from tasks.algorithms.image_classification_tf.hyperparameters import DEFAULT_MODEL_ID
from tasks.errors import InputError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    for name in ("TFHUB_CACHE_DIR", "VISION_PIPELINES_TFHUB_MIRROR", EXTRA_REGISTRY_ENV):
        monkeypatch.delenv(name, raising=False)


def module(folder: Path) -> Path:
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"graph")
    (folder / "variables" / "variables.index").write_bytes(b"index")
    return folder


@pytest.mark.parametrize(
    "family",
    [
        "mobilenet-v2",
        "mobilenet-v3",
        "efficientnet-b0",
        "efficientnet-b7",
        "efficientnet-v2",
        "resnet-v1-50",
        "resnet-v1-101",
        "resnet-v2-152",
        "inception-v3",
        "bit-m-r50x1",
    ],
)
def test_the_registry_covers_the_reference_families(family):
    assert any(family in model_id for model_id in registry())


def test_every_entry_is_complete_and_large_models_default_smaller():
    for model in registry().values():
        assert model.model_id.startswith("tensorflow-ic-")
        assert model.feature_vector.startswith("https://tfhub.dev/")
        assert 96 <= model.input_size <= 600
    b7 = get_model("tensorflow-ic-efficientnet-b7-classification-1")
    assert b7.input_size == 600
    assert b7.defaults == {"batch_size": "4", "train_only_top_layer": "True"}


def test_a_deployment_adds_its_own_models(tmp_path, monkeypatch):
    extra = tmp_path / "models.json"
    extra.write_text(
        json.dumps(
            {
                "models": [
                    {"model_id": "acme-tiny", "feature_vector": "file:///m/fv", "input_size": 64}
                ]
            }
        )
    )
    monkeypatch.setenv(EXTRA_REGISTRY_ENV, str(extra))
    assert get_model("acme-tiny").input_size == 64
    assert DEFAULT_MODEL_ID in registry()
    bad = tmp_path / "bad.json"
    bad.write_text("[]")
    monkeypatch.setenv(EXTRA_REGISTRY_ENV, str(bad))
    with pytest.raises(InputError, match="not a model registry"):
        registry()


def test_an_unknown_id_lists_the_known_ones():
    with pytest.raises(UnknownModelError, match=f"available: .*{DEFAULT_MODEL_ID}"):
        get_model("mobilenet")


def test_the_hub_cache_layout_resolves_a_handle(tmp_path, monkeypatch):
    handle = get_model(DEFAULT_MODEL_ID).feature_vector
    cached = module(tmp_path / hashlib.sha1(handle.encode()).hexdigest())
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path))
    assert locate(DEFAULT_MODEL_ID) == str(cached)
    # The step's private copy of the cached module: what is checked and loaded.
    fetched = fetch(DEFAULT_MODEL_ID, "feature_vector", tmp_path / "x")
    assert fetched.is_relative_to(tmp_path / "x") and oct(fetched.stat().st_mode & 0o777) == "0o700"
    assert {p.relative_to(fetched): p.read_bytes() for p in fetched.rglob("*") if p.is_file()} == {
        p.relative_to(cached): p.read_bytes() for p in cached.rglob("*") if p.is_file()
    }


def test_nothing_offline_says_where_it_looked():
    with pytest.raises(HubModelNotFoundError) as raised:
        locate(DEFAULT_MODEL_ID)
    assert "TFHUB_CACHE_DIR unset; VISION_PIPELINES_TFHUB_MIRROR unset" in str(raised.value)
    assert "available: none" in str(raised.value)


def test_mirror_from_a_download_and_list_by_command_line(tmp_path):
    download = tmp_path / "download.tar.gz"
    with tarfile.open(download, "w:gz") as tar:
        tar.add(module(tmp_path / "m"), arcname=".")
    env_mirror = f"file://{tmp_path / 'mirror'}"
    env = {
        "VISION_PIPELINES_TFHUB_MIRROR": env_mirror,
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
    }
    run = subprocess.run(
        [sys.executable, "-m", "tasks.hub", "mirror", DEFAULT_MODEL_ID, str(download)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
    )
    assert run.returncode == 0, run.stderr
    listed = subprocess.run(
        [sys.executable, "-m", "tasks.hub", "list"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
    ).stdout.splitlines()
    assert f"{DEFAULT_MODEL_ID}\t224\toffline\tMobileNet V2 1.00 224" in listed
    assert len(listed) == len(registry())
    archive = tmp_path / "mirror" / DEFAULT_MODEL_ID / "feature_vector.tar.gz"
    with tarfile.open(archive) as tar:
        assert sorted(tar.getnames()) == ["saved_model.pb", "variables/variables.index"]


def test_a_mirror_source_that_is_not_a_saved_model_is_refused(tmp_path):
    (tmp_path / "junk").mkdir()
    with pytest.raises(InputError, match="not a TF2 SavedModel"):
        mirror(DEFAULT_MODEL_ID, tmp_path / "junk", to=f"file://{tmp_path}/mirror")


def test_a_hub_archive_with_a_link_is_refused(tmp_path, monkeypatch):
    archive = tmp_path / "mirror" / DEFAULT_MODEL_ID / "feature_vector.tar.gz"
    archive.parent.mkdir(parents=True)
    with tarfile.open(archive, "w:gz") as tar:
        link = tarfile.TarInfo("saved_model.pb")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
        tar.addfile(tarfile.TarInfo("variables/x"), io.BytesIO(b""))
    monkeypatch.setenv("VISION_PIPELINES_TFHUB_MIRROR", f"file://{tmp_path / 'mirror'}")
    with pytest.raises(InputError, match="is a link or special file"):
        fetch(DEFAULT_MODEL_ID, "feature_vector", tmp_path / "out")
