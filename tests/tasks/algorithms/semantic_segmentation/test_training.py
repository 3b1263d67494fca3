"""semantic-segmentation through its command lines: training, evaluation and batch transform on
generated scenes; label maps; manifests; incremental training; every bad input with its
sentence."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tasks.contract import EXIT_BAD_INPUT
from tasks.train import main as train_main
from tests.tasks.algorithms.semantic_segmentation.conftest import (
    ALGORITHM,
    SMALL,
    make_ml_root,
    run_cli,
)


def train(ml) -> int:
    return train_main(["--algorithm", ALGORITHM, "--ml-root", str(ml.root)])


def failure(ml) -> str:
    return ml.failure_path.read_text().strip()


def test_training_writes_the_model_and_its_reports(trained):
    with tarfile.open(trained.model_archive) as tar:
        sizes = {m.name: m.size for m in tar.getmembers()}
        manifest = json.loads(tar.extractfile("manifest.json").read())
    assert {"manifest.json", "checksums.json", "saved_model/saved_model.pb", "model.keras"} <= set(
        sizes
    )
    # Each weight is stored once in each: the serving network's in the SavedModel (Keras'
    # ExportArchive.track stored them twice), the training network's (+ the small aux head)
    # in model.keras, without the optimizer's slots (adam's doubled the file again).
    served = sum(v for k, v in sizes.items() if k.startswith("saved_model/variables/"))
    assert served <= sizes["model.keras"] <= 1.2 * served, sizes
    assert manifest["algorithm"] == ALGORITHM
    assert manifest["architecture"] == {
        "backbone": "resnet-50",
        "algorithm": "fcn",
        "crop_size": 24,
        "num_classes": 3,
    }
    metrics = json.loads(trained.metrics_path.read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2]
    last = metrics["epochs"][-1]
    assert {"validation_mIoU", "validation_pixel_accuracy", "images_per_second"} <= set(last)
    assert set(last["validation_per_class_iou"]) == {"0", "1", "2"}
    present = [v for v in last["validation_per_class_iou"].values() if v is not None]
    assert np.isclose(np.mean(present), last["validation_mIoU"], atol=1e-4)
    assert (trained.output_dir / "learning_curves.png").stat().st_size > 0


def test_transform_writes_one_mask_per_image_at_its_own_size(trained, tmp_path):
    images = tmp_path / "images"
    (images / "nested").mkdir(parents=True)
    rng = np.random.default_rng(0)
    sizes = {"odd.jpg": (97, 131), "nested/wide.png": (300, 41), "grey.png": (20, 17)}
    for name, (w, h) in sizes.items():
        pixels = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        Image.fromarray(pixels if name != "grey.png" else pixels[..., 0]).save(images / name)
    out = tmp_path / "out" / "predictions.jsonl"
    model = trained.model_archive
    run = run_cli(
        "tasks.transform", "--model", model, "--input", images, "--output", out, "--probabilities"
    )
    assert run.returncode == 0, run.stderr[-3000:]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["source-ref"] for r in rows] == ["grey.png", "nested/wide.png", "odd.jpg"]
    for row in rows:
        mask = Image.open(out.parent / row["mask"])
        assert mask.mode == "P" and mask.size == sizes[row["source-ref"]]
        assert set(np.unique(np.asarray(mask))) <= {0, 1, 2}
        probabilities = np.load(out.parent / row["probabilities"])
        w, h = sizes[row["source-ref"]]
        assert probabilities.shape == (h, w, 3) and probabilities.dtype == np.float16
        assert np.allclose(probabilities.astype(np.float32).sum(-1), 1, atol=1e-2)
        assert (probabilities.argmax(-1) == np.asarray(mask)).mean() > 0.99
        fractions = np.bincount(np.asarray(mask).ravel(), minlength=3) / (w * h)
        # Written to 6 places (rounding both sides to 4 differed near a half: a flaky check).
        expected = {str(i): float(f) for i, f in enumerate(fractions) if f}
        assert row["class_fractions"] == pytest.approx(expected, abs=1e-6)
    assert not list(out.parent.glob(".predictions_masks.*"))  # no work folder left


def test_evaluate_scores_iou_and_draws_overlays(trained, scenes, tmp_path):
    out = tmp_path / "evaluation.json"
    run = run_cli(
        "tasks.evaluate", "--model", trained.model_archive, "--input", scenes, "--output", out
    )
    assert run.returncode == 0, run.stderr[-3000:]
    evaluation = json.loads(out.read_text())
    matrix = np.asarray(evaluation["confusion_matrix"])
    labelled = sum(
        int((np.asarray(Image.open(p)) != 255).sum())
        for p in (scenes / "validation_annotation").glob("*.png")
    )
    assert evaluation["samples"] == 3 and matrix.sum() == labelled
    assert np.isclose(evaluation["pixel_accuracy"], np.trace(matrix) / matrix.sum())
    ious = [c["iou"] for c in evaluation["per_class"].values() if c["iou"] is not None]
    assert np.isclose(evaluation["mIoU"], np.mean(ious))
    for png in ("evaluation_confusion_matrix.png", "evaluation_overlays.png"):
        assert (tmp_path / png).stat().st_size > 0


def encode(data: Path, label_map: dict) -> None:
    """Rewrite every annotation of `data` in the encoding of `label_map` (255 stays)."""
    values = np.full(256, 255, dtype=np.uint8)
    for cls, value in label_map["map"].items():
        values[int(cls)] = value
    for png in data.glob("*_annotation/*.png"):
        Image.fromarray(values[np.asarray(Image.open(png))], "L").save(png)


def as_manifests(data: Path) -> None:
    """Move each split into `<split>/images`, `<split>/labels` and a manifest naming both."""
    for split in ("train", "validation"):
        images, labels = data / f"{split}-images", data / f"{split}-labels"
        (data / split).rename(images)
        (data / f"{split}_annotation").rename(labels)
        (data / split).mkdir()
        images.rename(data / split / "images")
        labels.rename(data / split / "labels")
        lines = [
            json.dumps(
                {
                    "source-ref": f"images/{p.name}",
                    "city-ref": f"labels/{p.stem}.png",
                    "city-ref-metadata": {"ignored": True},
                }
            )
            for p in sorted((data / split / "images").glob("*.jpg"))
        ]
        (data / split / f"{split}.manifest").write_text("\n".join(lines) + "\n")


def test_incremental_training_from_manifests_with_a_label_map(trained, scenes, tmp_path):
    """One run covers the other ways in: augmented manifests, a {"map"} label map per split
    and the previous model in the model channel; its masks can be written in that encoding."""
    data = tmp_path / "data"
    shutil.copytree(scenes, data)
    label_map = {"map": {"0": 5, "1": 45, "2": 85}}
    encode(data, label_map)
    as_manifests(data)
    (data / "label_map").mkdir()
    for split in ("train", "validation"):
        (data / "label_map" / f"{split}_label_map.json").write_text(json.dumps(label_map))
    (data / "model").mkdir()
    shutil.copy(trained.model_archive, data / "model" / "model.tar.gz")
    ml = make_ml_root(
        tmp_path / "ml", data, SMALL, train={"AttributeNames": ["source-ref", "city-ref"]}
    )
    assert train(ml) == 0, failure(ml)
    metrics = json.loads(ml.metrics_path.read_text())
    assert metrics["train_samples"] == 6 and metrics["validation_samples"] == 3

    out = tmp_path / "masks.jsonl"
    images = data / "validation" / "images"
    run = run_cli(
        "tasks.transform",
        "--model",
        ml.model_archive,
        "--input",
        images,
        "--output",
        out,
        "--encode-labels",
    )
    assert run.returncode == 0, run.stderr[-3000:]
    for row in map(json.loads, out.read_text().splitlines()):
        assert set(np.unique(np.asarray(Image.open(tmp_path / row["mask"])))) <= {5, 45, 85}
    evaluation = tmp_path / "evaluation.json"  # the manifest's annotations, the model's map
    manifest = data / "validation" / "validation.manifest"
    run = run_cli(
        "tasks.evaluate", "--model", ml.model_archive, "--input", manifest, "--output", evaluation
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert json.loads(evaluation.read_text())["samples"] == 3


def test_incremental_training_refuses_another_network(trained, scenes, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(scenes, data)
    (data / "model").mkdir()
    shutil.copy(trained.model_archive, data / "model" / "model.tar.gz")
    ml = make_ml_root(tmp_path / "ml", data, {**SMALL, "crop_size": "32", "algorithm": "psp"})
    assert train(ml) == EXIT_BAD_INPUT
    assert "crop_size=24 in the model, 32 now" in failure(ml)
    assert "algorithm='fcn' in the model, 'psp' now" in failure(ml)


def broken(tmp_path: Path, scenes: Path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(scenes, data)
    return data


def _rewrite(path: Path, image: Image.Image) -> None:
    image.save(path)


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (
            lambda d: (d / "train" / "train_0001.jpg").unlink(),
            "train_annotation/train_0001.png has no image in train/",
        ),
        (
            lambda d: (d / "validation_annotation" / "validation_0002.png").unlink(),
            "validation/validation_0002.jpg has no annotation validation_annotation/"
            "validation_0002.png",
        ),
        (
            lambda d: _rewrite(d / "train_annotation" / "train_0002.png", Image.new("L", (7, 5))),
            "train_annotation/train_0002.png is 7x5, its image train_0002.jpg is 40x30",
        ),
        (
            lambda d: _rewrite(
                d / "train_annotation" / "train_0003.png", Image.new("RGB", (40, 30))
            ),
            "train_annotation/train_0003.png: mode RGB; annotations must be single-channel 8-bit",
        ),
        (
            lambda d: _rewrite(
                d / "train_annotation" / "train_0004.png", Image.new("I;16", (40, 30), 300)
            ),
            "train_annotation/train_0004.png: mode I;16",
        ),
        (
            lambda d: _rewrite(
                d / "validation_annotation" / "validation_0000.png", Image.new("L", (40, 30), 9)
            ),
            "validation_annotation/validation_0000.png: pixel values [9] are neither a class "
            "(0..2) nor 255",
        ),
        (
            lambda d: (d / "train" / "train_0005.jpg").write_bytes(b"not a jpeg"),
            "cannot read train/train_0005.jpg",
        ),
    ],
)
def test_bad_datasets_are_refused_before_training_naming_the_file(
    tmp_path, scenes, damage, expected
):
    data = broken(tmp_path, scenes)
    damage(data)
    ml = make_ml_root(tmp_path / "ml", data, SMALL)
    assert train(ml) == EXIT_BAD_INPUT
    assert expected in failure(ml)
    assert not ml.model_archive.exists() and not (ml.root / "checkpoints").exists()


def test_every_problem_of_both_splits_in_one_message(tmp_path, scenes):
    data = broken(tmp_path, scenes)
    (data / "train" / "train_0001.jpg").unlink()
    Image.new("L", (40, 30), 200).save(data / "validation_annotation" / "validation_0001.png")
    ml = make_ml_root(tmp_path / "ml", data, SMALL)
    assert train(ml) == EXIT_BAD_INPUT
    message = failure(ml)
    assert "2 problems" in message
    assert "train_0001.png has no image" in message and "validation_0001.png: pixel" in message


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"algorithm": "unet"}, "'algorithm' got 'unet'; allowed: one of fcn, psp, deeplab"),
        ({"backbone": "resnet-18"}, "'backbone' got 'resnet-18'; allowed: one of resnet-50"),
        ({"num_classes": "255"}, "'num_classes' got '255'; allowed: an integer from 2 to 254"),
        ({"crop_size": "16"}, "'crop_size' got '16'"),
        ({"lr_scheduler": "step"}, "'lr_scheduler_step' is required when lr_scheduler=step"),
        ({"lr_scheduler_step": "10,5"}, "strictly increasing epochs"),
        ({"weight_decay": "1"}, "'weight_decay' got 1.0"),
        ({"optimizer": "adadelta"}, "allowed: one of sgd, adam, adagrad, nag, rmsprop"),
        ({"early_stopping_tolerance": "2"}, "'early_stopping_tolerance' got '2'"),
        ({"unknown": "1"}, "unknown hyperparameter 'unknown'"),
    ],
)
def test_bad_hyperparameters_are_one_sentence_before_any_data_is_read(tmp_path, change, expected):
    ml = make_ml_root(tmp_path / "ml", None, {**SMALL, **change})
    assert train(ml) == EXIT_BAD_INPUT
    assert expected in failure(ml)
    assert "\n" not in failure(ml)


def test_a_bad_label_map_is_named(tmp_path, scenes):
    data = broken(tmp_path, scenes)
    (data / "label_map").mkdir()
    (data / "label_map" / "train_label_map.json").write_text('{"scale": "zero"}')
    ml = make_ml_root(tmp_path / "ml", data, SMALL)
    assert train(ml) == EXIT_BAD_INPUT
    assert "train_label_map.json: scale must be a positive integer, got 'zero'" in failure(ml)


def test_a_bad_seed_setting_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("VISION_PIPELINES_SEED", "abc")
    ml = make_ml_root(tmp_path / "ml", None, SMALL)
    assert train(ml) == EXIT_BAD_INPUT
    assert failure(ml) == "setting VISION_PIPELINES_SEED='abc': allowed: a whole number"
