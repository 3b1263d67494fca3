"""Input modes: RecordIO, images + .lst (with resize), augmented manifests; labels checked first."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import tensorflow as tf

from tasks.algorithms.image_classification.data import augment, training_dataset
from tasks.classification.channels import ChannelError, load_channel
from tasks.data.lst import list_class_folders, write_lst
from tasks.data.synthetic import make_multilabel_dataset
from tasks.steps.batch_prediction import transform
from tasks.train import main as train_main


def image_format_root(tmp_path, shapes, make_ml_root, tiny):
    """An ml-root whose train/validation channels hold images with .lst channels."""
    ml = make_ml_root(tmp_path / "ml", shapes, tiny)
    listing = list_class_folders(shapes)
    for name, entries in (("train", listing.entries[::2]), ("validation", listing.entries[1::2])):
        shutil.rmtree(ml.channel(name))
        shutil.copytree(shapes, ml.channel(name))
        ml.channel(f"{name}_lst").mkdir()
        write_lst(ml.channel(f"{name}_lst") / f"{name}.lst", entries)
    config = {name: {"ContentType": "application/x-image"} for name in ("train", "validation")}
    ml.input_data_config_path.write_text(json.dumps(config))
    return ml


def test_image_format_channels_with_resize_train(tmp_path, shapes, make_ml_root, tiny):
    ml = image_format_root(tmp_path, shapes, make_ml_root, tiny)
    values = json.loads(ml.hyperparameters_path.read_text())
    values.update(num_training_samples="16", resize="20", epochs="1")
    ml.hyperparameters_path.write_text(json.dumps(values))
    assert train_main(["--algorithm", "image-classification", "--ml-root", str(ml.root)]) == 0
    assert json.loads(ml.metrics_path.read_text())["train_samples"] == 16


def test_image_format_needs_its_lst_channel(tmp_path, shapes, make_ml_root, tiny):
    ml = image_format_root(tmp_path, shapes, make_ml_root, tiny)
    shutil.rmtree(ml.channel("validation_lst"))
    with pytest.raises(ChannelError, match="the validation_lst channel with one .lst file"):
        load_channel(
            ml.channel("validation"),
            "validation",
            config={"ContentType": "application/x-image"},
            num_classes=4,
            multi_label=False,
            lst_dir=ml.channel("validation_lst"),
        )


def test_manifest_with_a_bad_label_fails_with_its_line(tmp_path, make_ml_root, shapes, tiny):
    ml = make_ml_root(tmp_path / "ml", shapes, tiny)
    manifest = make_multilabel_dataset(tmp_path / "ml-data", count=6, size=16)
    lines = manifest.read_text().splitlines()
    lines[3] = json.dumps({"source-ref": "images/00003.jpg", "class": "[1, 0, 1]"})
    manifest.write_text("\n".join(lines) + "\n")
    shutil.rmtree(ml.channel("train"))
    shutil.copytree(manifest.parent, ml.channel("train"))
    ml.input_data_config_path.write_text(
        json.dumps({"train": {"ContentType": "application/x-recordio; label-format=multi-hot"}})
    )
    assert train_main(["--algorithm", "image-classification", "--ml-root", str(ml.root)]) == 2
    failure = ml.failure_path.read_text()
    assert "labels.manifest" in failure and "line 4" in failure
    assert "a multi-hot vector needs 4 values, got 3" in failure


def test_class_id_manifest_becomes_multi_hot(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"x")
    (tmp_path / "x.manifest").write_text('{"source-ref": "a.jpg", "class": "[0, 2]"}\n')
    images = load_channel(
        tmp_path,
        "train",
        num_classes=3,
        multi_label=False,
        config={"ContentType": "application/x-recordio; label-format=class-id"},
    )
    assert images.multi_label and images.labels.tolist() == [[1.0, 0.0, 1.0]]
    assert images.paths == [str(tmp_path / "a.jpg")]


@pytest.mark.parametrize("kind", ["crop", "crop_color", "crop_color_transform"])
def test_augmentations_keep_shape_and_pixel_range(shapes, kind):
    data = next(shapes.rglob("*.jpg")).read_bytes()
    out = augment(tf.constant(data), (3, 12, 12), kind).numpy()
    assert out.shape == (12, 12, 3) and out.min() >= 0.0 and out.max() <= 255.0


def test_training_batches_have_the_network_input_shape(tmp_path, shapes, make_ml_root, tiny):
    ml = make_ml_root(tmp_path / "ml", shapes, tiny)
    images = load_channel(ml.channel("train"), "train", config={}, num_classes=4, multi_label=False)
    x, y = next(
        iter(
            training_dataset(
                images, image_shape=(3, 16, 16), batch_size=5, augmentation="crop_color"
            )
        )
    )
    assert x.shape == (5, 16, 16, 3) and y.dtype == tf.int32


def test_transform_reads_a_manifest_in_its_order(tmp_path, shapes, make_ml_root, tiny):
    ml = make_ml_root(tmp_path / "ml", shapes, {**tiny, "epochs": "1"})
    assert train_main(["--algorithm", "image-classification", "--ml-root", str(ml.root)]) == 0
    refs = ["triangle/triangle_0001.jpg", "circle/circle_0003.jpg"]
    manifest = shapes / "batch.manifest"
    manifest.write_text("".join(json.dumps({"source-ref": r}) + "\n" for r in refs))
    out = tmp_path / "out.jsonl"
    assert transform(ml.model_dir / "model.tar.gz", manifest, out) == 2
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["source-ref"] for r in rows] == refs
    np.testing.assert_allclose([sum(r["prediction"]) for r in rows], 1.0, atol=1e-4)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 3.5e38])
def test_a_recordio_label_that_is_not_a_class_index_is_a_sentence(value):
    """Hardening, third pass: a RecordIO label of NaN or inf ended in an internal error."""
    from tasks.classification.channels import ChannelError, check_labels

    with pytest.raises(ChannelError, match=r"train.rec at byte offset 48: label .*allowed: one"):
        check_labels([(0.0,), (value,)], ["x", "train.rec at byte offset 48"], num_classes=3,
                     multi_label=False)  # fmt: skip
