"""The trainer learns as well as the reference on generated data (the issue's acceptance bars).

Single-label: ResNet-20 on 10 classes of 32x32 drawn shapes, RecordIO channels, test accuracy
>= 95%. Multi-label: an augmented-manifest channel of images holding several shapes, macro mAP
>= 0.9. Both train in about a minute on 2 CPU cores, seeded (tests.conftest.SEED) in a process
of their own, so each run, and the figure it asserts, repeats exactly on the same hardware.
"""

from __future__ import annotations

import json
import shutil

import pytest

from tasks.contract import MLRoot
from tasks.data.lst import list_class_folders, split_entries
from tasks.data.pack import pack_lst
from tasks.data.synthetic import TEN_CLASSES, make_multilabel_dataset, make_shapes_dataset
from tasks.steps.scoring import evaluate
from tests.conftest import train_seeded

pytestmark = pytest.mark.integration
SGD = {
    "optimizer": "sgd",
    "learning_rate": "0.1",
    "momentum": "0.9",
    "weight_decay": "0.0001",
    "mini_batch_size": "32",
    "num_layers": "20",
}


def write_config(ml: MLRoot, hyperparameters: dict, input_config: dict | None = None) -> None:
    ml.config_dir.mkdir(parents=True, exist_ok=True)
    ml.hyperparameters_path.write_text(json.dumps(hyperparameters))
    if input_config:
        ml.input_data_config_path.write_text(json.dumps(input_config))


def test_resnet20_reaches_95_percent_on_ten_generated_classes(tmp_path):
    images = make_shapes_dataset(tmp_path / "images", per_class=200, classes=TEN_CLASSES, seed=7)
    listing = list_class_folders(images)
    split = split_entries(listing.entries, train_ratio=0.6, test_ratio=0.25, seed=1)
    ml = MLRoot(tmp_path / "ml")
    for name, entries in (("train", split.train), ("validation", split.validation)):
        ml.channel(name).mkdir(parents=True)
        pack_lst(
            entries, images, ml.channel(name) / f"{name}.rec", ml.channel(name) / f"{name}.idx"
        )
    test_rec = tmp_path / "test.rec"
    pack_lst(split.test, images, test_rec, tmp_path / "test.idx")
    write_config(
        ml,
        {
            **SGD,
            "num_classes": "10",
            "num_training_samples": str(len(split.train)),
            "image_shape": "3,32,32",
            # 14 epochs: 10 reached 0.998 on one run and 0.886 on another (unseeded).
            "epochs": "14",
            "lr_scheduler_step": "9,12",
            "augmentation_type": "crop",
        },
    )
    train_seeded(ml)  # seeded, in a process of its own: the asserted figure repeats exactly
    metrics = evaluate(ml.model_dir / "model.tar.gz", test_rec, tmp_path / "test.json")
    assert metrics["samples"] == len(split.test) == 500
    assert metrics["accuracy"] >= 0.95, metrics["accuracy"]
    assert (tmp_path / "test_confusion_matrix.png").is_file()


def test_multi_label_manifest_reaches_map_of_0_9(tmp_path):
    # 600 images of 32 px, 10 epochs: mAP 1.0 with seeds 1 and 2 in about a minute on 2 cores
    # (the earlier 900 of 48 px, 12 epochs, took 134 s for the same result).
    train = make_multilabel_dataset(tmp_path / "train", count=600, size=32, seed=1)
    test = make_multilabel_dataset(tmp_path / "test", count=300, size=32, seed=2)
    ml = MLRoot(tmp_path / "ml")
    ml.channel("train").parent.mkdir(parents=True)
    shutil.copytree(train.parent, ml.channel("train"))
    shutil.copytree(test.parent, ml.channel("validation"))
    content_type = "application/x-recordio; label-format=multi-hot"
    write_config(
        ml,
        {
            **SGD,
            "num_classes": "4",
            "num_training_samples": "600",
            "image_shape": "3,32,32",
            "epochs": "10",
            "lr_scheduler_step": "6,9",
        },
        {
            name: {"ContentType": content_type, "AttributeNames": ["source-ref", "class"]}
            for name in ("train", "validation")
        },
    )
    train_seeded(ml)  # seeded, in a process of its own: the asserted figure repeats exactly
    training = json.loads(ml.metrics_path.read_text())
    assert training["multi_label"] is True and "validation_pr_auc" in training["final"]
    metrics = evaluate(ml.model_dir / "model.tar.gz", test, tmp_path / "test.json")
    assert metrics["mAP"] >= 0.9, metrics["mAP"]
    assert set(metrics["per_class"]["circle"]) >= {"precision", "recall", "f1", "average_precision"}
