"""Pipe input mode against moto's S3: segmentation reads its pairs where they lie (the
four-folder layout the DAG prepares, or a manifest), with File mode's seeded numbers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from s3fs import S3FileSystem

from tests.s3 import BUCKET, assert_none_staged
from tests.tasks.algorithms.semantic_segmentation.conftest import ROOT, TRAINED, TRAINED_SEED
from tests.tasks.algorithms.semantic_segmentation.test_training import as_manifests

pytestmark = pytest.mark.integration
PIPE = {"TrainingInputMode": "Pipe"}
CHANNELS = ("train", "validation", "train_annotation", "validation_annotation")


def _train(ml_root: Path, output: str, prefix: str, config: dict) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "tasks.job", "train", "--algorithm", "semantic-segmentation"]
    args += ["--ml-root", str(ml_root), "--output-uri", output]
    for name in CHANNELS:
        args += ["--channel", f"{name}=s3://{BUCKET}/{prefix}/{name}"]
    args += ["--hyperparameters", json.dumps(TRAINED), "--input-data-config", json.dumps(config)]
    return subprocess.run(
        args,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **TRAINED_SEED},
        capture_output=True,
        text=True,
    )


def _numbers(metrics: bytes) -> list[dict]:
    """Each epoch's training loss and validation metrics."""
    return [
        {k: v for k, v in e.items() if k.startswith(("train_loss", "validation_"))}
        for e in json.loads(metrics)["epochs"]
    ]


def _bytes_of(data: Path) -> list[bytes]:
    return [p.read_bytes()[-128:] for p in data.rglob("*") if p.suffix in (".jpg", ".png")]


def test_the_four_folder_layout_streams_with_file_modes_numbers(
    s3_endpoint, scenes, trained, tmp_path
):
    """The same seeded run as the shared trained model's (File mode, the scenes on disk), its
    channels streamed from the bucket instead: the same numbers, epoch for epoch."""
    S3FileSystem().put(str(scenes) + "/", f"{BUCKET}/layout/", recursive=True)
    pipe = _train(
        tmp_path / "pipe", f"s3://{BUCKET}/out/pipe", "layout", dict.fromkeys(CHANNELS, PIPE)
    )
    assert pipe.returncode == 0, pipe.stderr[-3000:]
    streamed = _numbers(S3FileSystem().cat_file(f"s3://{BUCKET}/out/pipe/metrics.json"))
    assert streamed == _numbers(trained.metrics_path.read_bytes())
    assert not (tmp_path / "pipe" / "input" / "data").exists()
    assert_none_staged(tmp_path / "pipe", _bytes_of(scenes))


def test_a_manifest_streams_its_pairs(s3_endpoint, scenes, tmp_path):
    """The pairs of manifests in the bucket, references resolved there, every pair checked
    through the bucket (what training then reads): nothing is copied."""
    from tasks.algorithms.semantic_segmentation.dataset import load_splits

    data = tmp_path / "data"
    shutil.copytree(scenes, data)
    as_manifests(data)
    S3FileSystem().put(str(data) + "/", f"{BUCKET}/manifest/", recursive=True)
    configs = {
        name: {**PIPE, "Uri": f"s3://{BUCKET}/manifest/{name}"} for name in ("train", "validation")
    }
    empty = tmp_path / "staged"  # nothing staged: the annotation channels are unused
    train, validation = load_splits(empty, num_classes=3, configs=configs)
    assert (len(train), len(validation)) == (6, 3)
    first = train.pairs[0]
    assert first.image == f"s3://{BUCKET}/manifest/train/images/{Path(first.image).name}"
    assert first.annotation.startswith(f"s3://{BUCKET}/manifest/train/labels/")
    assert train.sizes[0] == (40, 30)
    image, mask = train.read(0)
    assert image.shape == (30, 40, 3) and mask.shape == (30, 40)
    assert not empty.exists()
