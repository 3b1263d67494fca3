"""FCN ResNet-50 learns from scratch: on generated scenes (shapes on noise, 255 outlines) the
held-out mIoU, scored at full size by `tasks.evaluate`, clearly beats predicting the majority
class. A small recipe that fits the suite's budget on 2 CPU cores: 160 scenes of 48x40, crops of
32, 8 epochs, inference at the full 48x40 (base_size). Seeded, so a run repeats exactly on the
same hardware. On a CPU without AVX-512 (dilated convolutions as shifted taps) seeds 0 and 1
reached held-out mIoU 0.73 and 0.70 (shape IoU 0.58, 0.54); 6 epochs reached only 0.60.
The validation channel (scored every epoch at full size; not what is asserted) holds 8 scenes:
with 40 the test took 1.5 times the CPU for the same weights (held-out mIoU 0.8626 both ways;
the seeded generator draws the training scenes first)"""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from tasks.data.synthetic import make_scenes_dataset
from tasks.evaluate import main as evaluate_main
from tests.tasks.algorithms.semantic_segmentation.conftest import ALGORITHM, make_ml_root, run_cli

SEEDED = {"VISION_PIPELINES_SEED": "0"}


def majority_miou(annotations) -> float:
    """mIoU of predicting the background everywhere (IoU of the others is 0)."""
    masks = [np.asarray(Image.open(p)) for p in annotations]
    labelled = sum(int((m != 255).sum()) for m in masks)
    background = sum(int((m == 0).sum()) for m in masks)
    return background / labelled / 2


def test_fcn_resnet50_learns_to_segment_unseen_scenes(tmp_path):
    data = make_scenes_dataset(
        tmp_path / "data", train=160, validation=8, classes=2, size=(48, 40), seed=1
    )
    held_out = make_scenes_dataset(
        tmp_path / "held_out", train=0, validation=40, classes=2, size=(48, 40), seed=2
    )
    hyperparameters = {
        "backbone": "resnet-50",
        "algorithm": "fcn",
        "use_pretrained_model": "False",
        "num_classes": "2",
        "num_training_samples": "160",
        "base_size": "48",
        "crop_size": "32",
        "epochs": "8",
        "mini_batch_size": "8",
        "optimizer": "adam",
        "learning_rate": "0.002",
    }
    ml = make_ml_root(tmp_path / "ml", data, hyperparameters)
    run = run_cli("tasks.train", "--algorithm", ALGORITHM, "--ml-root", ml.root, env=SEEDED)
    assert run.returncode == 0, run.stderr[-3000:]
    out = tmp_path / "evaluation.json"
    assert (
        evaluate_main(
            ["--model", str(ml.model_archive), "--input", str(held_out), "--output", str(out)]
        )
        == 0
    )
    evaluation = json.loads(out.read_text())
    baseline = majority_miou((held_out / "validation_annotation").glob("*.png"))
    assert evaluation["mIoU"] >= 0.6, evaluation
    assert evaluation["mIoU"] >= baseline + 0.2, (evaluation["mIoU"], baseline)
    assert evaluation["per_class"]["1"]["iou"] >= 0.4
