from __future__ import annotations

import json
import tarfile

import pytest

from tasks.artifact import (
    MANIFEST,
    SAVED_MODEL,
    ArtifactError,
    ModelManifest,
    extract_artifact,
    write_artifact,
)

MANIFEST_VALUES = ModelManifest(
    algorithm="image-classification",
    architecture={"num_layers": 20, "image_shape": (3, 16, 16), "num_classes": 4},
    class_names=["a", "b", "c", "d"],
    hyperparameters={"epochs": "2"},
)


def _artifact(tmp_path, manifest=MANIFEST_VALUES):
    saved = tmp_path / "work" / SAVED_MODEL
    saved.mkdir(parents=True)
    (saved / "saved_model.pb").write_bytes(b"graph")
    extra = tmp_path / "work" / "weights.bin"
    extra.write_bytes(b"w")
    tar = tmp_path / "model.tar.gz"
    write_artifact(tar, manifest, {SAVED_MODEL: saved, "weights.bin": extra})
    return tar


def test_manifest_round_trips_through_the_archive(tmp_path):
    tar = _artifact(tmp_path)
    with tarfile.open(tar) as t:
        assert set(t.getnames()) >= {MANIFEST, SAVED_MODEL, "weights.bin"}
    extracted = extract_artifact(tar, tmp_path / "x")
    assert extracted.manifest == MANIFEST_VALUES
    assert extracted.manifest.architecture["image_shape"] == [3, 16, 16]
    assert (extracted.root / "weights.bin").read_bytes() == b"w"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_compatibility_names_every_difference():
    MANIFEST_VALUES.check_compatible(
        algorithm="image-classification",
        architecture={"num_layers": 20, "image_shape": (3, 16, 16), "num_classes": 4},
        source="m.tar.gz",
    )
    with pytest.raises(ArtifactError) as refused:
        MANIFEST_VALUES.check_compatible(
            algorithm="image-classification",
            architecture={"num_layers": 32, "image_shape": (3, 24, 24), "num_classes": 4},
            source="m.tar.gz",
        )
    message = str(refused.value)
    assert "needs the same num_layers, image_shape and num_classes" in message
    assert "num_layers=20 in the model, 32 now" in message
    assert "image_shape=[3, 16, 16] in the model, [3, 24, 24] now" in message
    with pytest.raises(ArtifactError, match="a image-classification model cannot continue as x"):
        MANIFEST_VALUES.check_compatible(algorithm="x", architecture={}, source="m.tar.gz")
    with pytest.raises(ArtifactError, match="trained with multi_label=0, this job uses multi_la"):
        MANIFEST_VALUES.check_compatible(
            algorithm="image-classification",
            architecture={},
            source="m.tar.gz",
            multi_label=True,
        )


def test_a_manifest_without_its_fields_is_named(tmp_path):
    tar = _artifact(tmp_path)
    work = tmp_path / "broken"
    with tarfile.open(tar) as t:
        t.extractall(work, filter="data")
    (work / MANIFEST).write_text(json.dumps({"algorithm": "image-classification"}))
    broken = tmp_path / "broken.tar.gz"
    with tarfile.open(broken, "w:gz") as t:
        for p in work.iterdir():
            t.add(p, arcname=p.name)
    with pytest.raises(ArtifactError, match="manifest.json lacks architecture, class_names"):
        extract_artifact(broken, tmp_path / "y")
