"""Pipe input mode against moto's S3: training streams RecordIO and manifests from the bucket,
with the same seeded numbers as File mode and none of the dataset on the ml-root."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from s3fs import S3FileSystem

from tasks.contract import MLRoot
from tasks.data.recordio_format import RecordIOReader, unpack
from tasks.data.synthetic import make_shapes_dataset
from tests.conftest import SEED, losses_of
from tests.s3 import BUCKET, assert_none_staged

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[4]
PIPE = {"TrainingInputMode": "Pipe"}


def _job(ml_root: Path, output: str, channels: dict[str, str], hp: dict, config: dict) -> dict:
    """`python -m tasks.job train` in a fresh process (seeded), as a pod runs it."""
    args = [sys.executable, "-m", "tasks.job", "train", "--ml-root", str(ml_root)]
    for name, uri in channels.items():
        args += ["--channel", f"{name}={uri}"]
    args += ["--hyperparameters", json.dumps(hp), "--input-data-config", json.dumps(config)]
    done = subprocess.run(
        [*args, "--output-uri", output],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "VISION_PIPELINES_SEED": SEED},
        capture_output=True,
        text=True,
    )
    summary = json.loads(S3FileSystem().cat_file(f"{output}/summary.json"))
    return {"code": done.returncode, "summary": summary, "log": done.stdout + done.stderr}


def _losses(output: str) -> list[tuple[float, float]]:
    return losses_of(S3FileSystem().cat_file(f"{output}/metrics.json"))


def _pipe(tmp_path: Path, name: str, channels: dict[str, str], hp: dict) -> str:
    """The seeded training in Pipe mode: nothing staged; its output's URI."""
    output = f"s3://{BUCKET}/out/{name}-pipe"
    pipe = _job(tmp_path / "pipe", output, channels, hp, dict.fromkeys(channels, PIPE))
    assert pipe["code"] == 0, pipe["log"][-3000:]
    assert not (tmp_path / "pipe" / "input" / "data").exists()
    return output


@pytest.fixture(scope="module")
def recordio_bucket(s3_endpoint, seeded):
    """The shared seeded run's train/validation RecordIO in the bucket; the image bytes."""
    fs = S3FileSystem()
    for name in ("train", "validation"):
        fs.put(str(seeded.channel(name)) + "/", f"{BUCKET}/rec/{name}/", recursive=True)
    with RecordIOReader(seeded.channel("train") / "train.rec") as reader:
        samples = [unpack(r.payload)[1][-256:] for r in reader]
    return seeded, samples


def test_recordio_streams_with_file_modes_numbers(recordio_bucket, tmp_path):
    """The shared seeded run (File mode, RecordIO on disk) again, its channels streamed from the
    bucket: the same losses, epoch for epoch."""
    seeded, samples = recordio_bucket
    hp = json.loads(seeded.hyperparameters_path.read_text())
    channels = {name: f"s3://{BUCKET}/rec/{name}" for name in ("train", "validation")}
    output = _pipe(tmp_path, "rec", channels, hp)
    assert _losses(output) == losses_of(seeded.metrics_path.read_bytes())
    assert_none_staged(tmp_path / "pipe", samples)


def test_a_truncated_rec_in_the_bucket_names_the_object_and_offset(recordio_bucket, tmp_path):
    ml, _ = recordio_bucket
    data = (ml.channel("train") / "train.rec").read_bytes()
    fs = S3FileSystem()
    fs.pipe_file(f"{BUCKET}/cut/train/train.rec", data[: len(data) - 30])
    hp = json.loads(ml.hyperparameters_path.read_text())
    channels = {"train": f"s3://{BUCKET}/cut/train", "validation": f"s3://{BUCKET}/rec/validation"}
    config = dict.fromkeys(channels, PIPE)
    outcomes = {}
    for mode, settings in (("File", {}), ("Pipe", config)):
        outcomes[mode] = _job(
            tmp_path / mode, f"s3://{BUCKET}/out/cut-{mode}", channels, hp, settings
        )
    pipe = outcomes["Pipe"]
    assert pipe["code"] == 2
    reason = pipe["summary"]["reason"]
    assert f"s3://{BUCKET}/cut/train/train.rec: truncated record at byte offset" in reason
    # The same offset as File mode names in its staged copy.
    offset = reason.split("byte offset ")[1].split(":")[0]
    assert outcomes["File"]["code"] == 2
    assert (
        f"train.rec: truncated record at byte offset {offset}:"
        in outcomes["File"]["summary"]["reason"]
    )


def test_a_manifest_streams_its_images_with_file_modes_numbers(s3_endpoint, tmp_path, tiny):
    images = make_shapes_dataset(tmp_path / "images", per_class=6, size=16)
    classes = sorted(p.name for p in images.iterdir() if p.is_dir())
    fs = S3FileSystem()
    lines: dict[str, list[str]] = {"train": [], "validation": []}
    for i, path in enumerate(sorted(images.rglob("*.jpg"))):
        split = "validation" if i % 4 == 0 else "train"
        ref = path.relative_to(images).as_posix()
        fs.pipe_file(f"{BUCKET}/manifest/{split}/{ref}", path.read_bytes())
        lines[split].append(
            json.dumps({"source-ref": ref, "class": classes.index(path.parent.name)})
        )
    for split, text in lines.items():
        fs.pipe_file(
            f"{BUCKET}/manifest/{split}/{split}.manifest", "\n".join(text).encode() + b"\n"
        )
    hp = {
        **tiny,
        "num_classes": str(len(classes)),
        "num_training_samples": str(len(lines["train"])),
    }
    channels = {name: f"s3://{BUCKET}/manifest/{name}" for name in ("train", "validation")}
    file = _job(tmp_path / "file", f"s3://{BUCKET}/out/manifest-file", channels, hp, {})
    assert file["code"] == 0, file["log"][-3000:]
    assert list((tmp_path / "file" / "input" / "data").iterdir())  # File mode staged them
    assert _losses(_pipe(tmp_path, "manifest", channels, hp)) == _losses(
        f"s3://{BUCKET}/out/manifest-file"
    )
    assert_none_staged(tmp_path / "pipe", [p.read_bytes()[-256:] for p in images.rglob("*.jpg")])


def test_channels_an_algorithm_cannot_stream_are_refused_before_anything_is_read(tmp_path):
    from tasks.job import main

    output = tmp_path / "out"
    code = main(
        ["train", "--algorithm", "image-classification-tf", "--ml-root", str(tmp_path / "ml")]
        + ["--channel", f"training={tmp_path}", "--output-uri", str(output)]
        + ["--input-data-config", json.dumps({"training": PIPE})]
    )
    assert code == 2
    reason = json.loads((output / "summary.json").read_text())["reason"]
    assert reason == (
        "channel 'training': image-classification-tf cannot read it in Pipe input mode; use File"
    )
    assert MLRoot(tmp_path / "ml").channel("training").exists() is False
