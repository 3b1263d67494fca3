"""The data-prep operators and the container contract's staging against S3 (a local emulator)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from operators.data_prep import LstGenerationOperator, RecordIOPackOperator
from tasks.data.recordio_format import RecordIOReader
from tasks.data.synthetic import make_shapes_dataset
from tasks.staging import stage_in, upload_folder
from tests.s3 import BUCKET

pytestmark = pytest.mark.integration


def upload_tree(client, root: Path, prefix: str) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            client.upload_file(str(path), BUCKET, f"{prefix}/{path.relative_to(root).as_posix()}")


def test_lists_and_records_are_written_to_s3(s3, tmp_path):
    images = make_shapes_dataset(tmp_path / "shapes", per_class=3, size=16)
    upload_tree(s3, images, "datasets/shapes")
    run = f"s3://{BUCKET}/runs/run=1"
    lists = LstGenerationOperator(
        task_id="make_lst",
        images_uri=f"s3://{BUCKET}/datasets/shapes",
        output_uri=f"{run}/lists",
        validation_split="0.25",
    ).execute({})
    assert lists["num_training_samples"] == 9
    packed = RecordIOPackOperator(
        task_id="pack",
        lst_uri=lists["train_lst"],
        images_uri=f"s3://{BUCKET}/datasets/shapes",
        output_uri=f"{run}/recordio/train",
        class_names=lists["classes"],
    ).execute({})
    assert packed["records"] == 9
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="runs/")["Contents"]}
    assert {
        "runs/run=1/lists/train.lst",
        "runs/run=1/lists/classes.json",
        "runs/run=1/recordio/train/train.rec",
        "runs/run=1/recordio/train/train.idx",
        "runs/run=1/recordio/train/classes.json",
    } <= keys
    assert not [k for k in keys if ".tmp-" in k], "temporary names are renamed away"
    local = tmp_path / "train.rec"
    s3.download_file(BUCKET, "runs/run=1/recordio/train/train.rec", str(local))
    with RecordIOReader(local) as reader:
        assert len(list(reader)) == 9


def test_container_staging_round_trip(s3, tmp_path):
    source = tmp_path / "channel"
    source.mkdir()
    (source / "a.rec").write_bytes(b"records")
    upload_tree(s3, source, "channels/train")
    staged = stage_in(f"s3://{BUCKET}/channels/train", tmp_path / "ml" / "train")
    assert (staged / "a.rec").read_bytes() == b"records"
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    (out / "sub" / "metrics.json").write_text("{}")
    assert upload_folder(out, f"s3://{BUCKET}/outputs") == [
        f"s3://{BUCKET}/outputs/sub/metrics.json"
    ]
    body = s3.get_object(Bucket=BUCKET, Key="outputs/sub/metrics.json")["Body"].read()
    assert body == b"{}"


def test_s3_datasets_are_listed_without_downloads_and_packed_from_their_split(
    s3, tmp_path, monkeypatch
):
    """Audit: make_lst downloaded a whole s3:// dataset to list its names, and every pack task
    downloaded all of it again. Now the listing reads no object, and a pack task fetches only
    the images of its own list."""
    import s3fs

    from tasks.data.lst import list_class_folders
    from tasks.data.lst_validation import validate_lst

    images = make_shapes_dataset(tmp_path / "shapes", per_class=4, size=16)
    upload_tree(s3, images, "datasets/split")
    fetched: list[str] = []
    real_get_file = s3fs.S3FileSystem._get_file

    async def recording_get_file(self, rpath, lpath, **kwargs):
        fetched.append(rpath)
        return await real_get_file(self, rpath, lpath, **kwargs)

    monkeypatch.setattr(s3fs.S3FileSystem, "_get_file", recording_get_file)
    run = f"s3://{BUCKET}/runs/run=split"
    lists = LstGenerationOperator(
        task_id="make_lst",
        images_uri=f"s3://{BUCKET}/datasets/split",
        output_uri=f"{run}/lists",
        validation_split="0.25",
    ).execute({})
    assert not [p for p in fetched if p.endswith((".png", ".jpg"))], fetched
    local = tmp_path / "validation.lst"
    s3.download_file(BUCKET, "runs/run=split/lists/validation.lst", str(local))
    validation = validate_lst(local, num_classes=4)
    everything = list_class_folders(images)
    assert lists["classes"] == everything.classes  # the same walk order as a local listing
    fetched.clear()
    RecordIOPackOperator(
        task_id="pack",
        lst_uri=lists["validation_lst"],
        images_uri=f"s3://{BUCKET}/datasets/split",
        output_uri=f"{run}/recordio/validation",
        class_names=lists["classes"],
    ).execute({})
    images_fetched = sorted(p.split("datasets/split/")[1] for p in fetched if "datasets/" in p)
    assert images_fetched == sorted(e.path for e in validation)
    assert len(images_fetched) < len(everything.entries)


def _fake_hub_module(folder: Path) -> Path:
    """The files of a SavedModel (the mirror moves files; it never loads them)."""
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"graph")
    (folder / "variables" / "variables.index").write_bytes(b"index")
    return folder


def test_an_s3_mirror_serves_hub_models_to_the_dag_and_the_trainer(s3, tmp_path, monkeypatch):
    from operators.pretrained import StagePretrainedModelOperator
    from tasks.algorithms.image_classification_tf.hub.mirror import (
        MIRROR_ENV,
        fetch,
        locate,
        mirror,
    )
    from tasks.algorithms.image_classification_tf.hyperparameters import DEFAULT_MODEL_ID

    prefix = f"s3://{BUCKET}/tfhub"
    monkeypatch.setenv(MIRROR_ENV, prefix)
    monkeypatch.delenv("TFHUB_CACHE_DIR", raising=False)
    uri = mirror(DEFAULT_MODEL_ID, _fake_hub_module(tmp_path / "download"))
    assert uri == f"{prefix}/{DEFAULT_MODEL_ID}/feature_vector.tar.gz"
    assert locate(DEFAULT_MODEL_ID) == uri
    folder = fetch(DEFAULT_MODEL_ID, "feature_vector", tmp_path / "fetched")
    assert (folder / "saved_model.pb").read_bytes() == b"graph"
    assert (folder / "variables" / "variables.index").read_bytes() == b"index"

    staged = StagePretrainedModelOperator(
        task_id="stage_model", model_id=DEFAULT_MODEL_ID, output_uri=f"s3://{BUCKET}/runs/r/pre"
    ).execute({})
    assert staged["model_uri"] == uri and staged["input_size"] == 224  # used where it is

    other = "tensorflow-ic-efficientnet-b0-classification-1"
    with pytest.raises(Exception, match=f"available: {DEFAULT_MODEL_ID};"):
        locate(other)


def test_a_class_folder_dataset_in_s3_is_checked_split_and_copied(s3, tmp_path):
    from operators.data_prep import ClassFolderDatasetOperator

    images = make_shapes_dataset(tmp_path / "shapes", per_class=5, size=16)
    upload_tree(s3, images, "datasets/folders")
    result = ClassFolderDatasetOperator(
        task_id="dataset",
        dataset_uri=f"s3://{BUCKET}/datasets/folders",
        output_uri=f"s3://{BUCKET}/runs/r/data",
        validation_split_ratio=0.2,
    ).execute({})
    assert result["classes"] == ["circle", "cross", "square", "triangle"]
    assert (result["train_samples"], result["validation_samples"]) == (16, 4)
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="runs/r/data/validation/")["Contents"]
    assert sorted(o["Key"].split("/")[-2] for o in listed) == [
        "circle",
        "cross",
        "square",
        "triangle",
    ]
    report = json.loads(
        s3.get_object(Bucket=BUCKET, Key="runs/r/data/class_folders.json")["Body"].read()
    )
    assert report["images"] == 20 and report["problems"] == []


def test_the_champion_pointer_in_s3_is_written_by_conditional_writes(s3, tmp_path):
    """Hardening item 4 on object storage: a write conditioned on the version read (If-Match,
    or If-None-Match for the first) fails when another writer was first, and the change is
    retried on the new version, so none is lost."""
    import fsspec

    from tasks.lifecycle.champion import _swap, pointer_uri, promote, read_pointer, rollback

    models = f"s3://{BUCKET}/models"
    model = tmp_path / "model.tar.gz"
    model.write_bytes(b"m")
    for run in ("r1", "r2"):
        promote(models, "p", model_uri=f"file://{model}", run_key=run, metrics={}, run_id=run,
                data_interval_end=None, fingerprint="")  # fmt: skip
    fs, path = fsspec.core.url_to_fs(pointer_uri(models, "p"))
    stale = fs.info(path)["ETag"]
    assert rollback(models, "p", "r1")["run_id"] == "r1"
    assert not _swap(fs, path, b"{}", stale)  # another writer was first: refused
    assert not _swap(fs, path, b"{}", None)  # "create" when it exists: refused
    pointer = read_pointer(models, "p")
    assert [(e["run_id"], e["action"]) for e in pointer["history"]] == [
        ("r1", "promote"),
        ("r2", "promote"),
        ("r1", "rollback"),
    ]
