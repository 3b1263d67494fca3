"""Derive the SavedModel op allow-list (tasks/saved_model_allowed_ops.txt) from the models we
build: each algorithm's exported model (image classification, transfer learning's backbone and
serving model, FCN / PSP / DeepLabV3), the embedded hub module, and a Keras-applications model of
each feature-vector family of the hub registry (MobileNet V2/V3, EfficientNet V1/V2, ResNet
V1/V2, Inception V3, Inception-ResNet V2; BiT is a ResNet V2 with group norm). Trainer
environment; a few minutes.

    .venv-trainer/bin/python scripts/allowed_ops.py            # the ops, with where each is used
    .venv-trainer/bin/python scripts/allowed_ops.py --write    # rewrite the list (then review)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tasks.saved_model_ops import ALLOWED_OPS_FILE, EXTRA_OPS_ENV, model_ops  # noqa: E402

HEADER = """\
# The ops a SavedModel may hold (tasks/saved_model_ops.py): what our three algorithms' models,
# the embedded hub module and the registry's feature-vector families need for inference and
# training, derived by scripts/allowed_ops.py and reviewed. Anything else (files, datasets,
# ops that carry a serialized graph, Python callbacks, summaries) refuses the model.
# Checkpoint ops (SaveV2, RestoreV2, ...) are not here: they are allowed only in the save and
# restore functions the SavedModel's own saver names.
"""


HUB_EXPORT_OPS = """\
# Reviewed by hand, not derived: pure tensor ops of the same layers as TF Hub exports them from
# TF1 graphs (TF-Slim), which this machine cannot download: conditionals for the training flag,
# atrous convolution as space-to-batch, other activations, normalizations and resizes.
BatchToSpaceND
SpaceToBatchND
If
StatelessIf
Switch
Merge
Enter
Exit
NextIteration
LoopCond
Elu
Selu
Softplus
Tanh
Erf
LeakyRelu
SquaredDifference
Pow
Exp
Log
Abs
Floor
Equal
NotEqual
LogicalOr
LogicalNot
Select
Prod
Max
ArgMax
GatherV2
Split
SplitV
Transpose
Tile
Fill
ZerosLike
OnesLike
BroadcastTo
BroadcastArgs
Rank
Size
StopGradient
PreventGradient
MirrorPad
PadV2
FusedBatchNorm
FusedBatchNormV2
BatchMatMulV2
ResizeNearestNeighbor
ResizeBicubic
ResizeArea
RandomStandardNormal
TruncatedNormal
StatelessRandomUniformV2
StatelessRandomGetKeyCounter
StatelessRandomGetAlg
"""


def _train(algorithm: str, ml: Path, hyperparameters: dict, env: dict) -> Path:
    """`python -m tasks.train` on a prepared ml-root; the model's extracted folder."""
    from tasks.artifact import extract_artifact
    from tasks.contract import MLRoot

    root = MLRoot(ml)
    root.config_dir.mkdir(parents=True, exist_ok=True)
    root.hyperparameters_path.write_text(json.dumps(hyperparameters))
    done = subprocess.run(
        [sys.executable, "-m", "tasks.train", "--algorithm", algorithm, "--ml-root", str(ml)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
    )
    if done.returncode:
        raise SystemExit(f"{algorithm}: {done.stderr[-3000:]}")
    return extract_artifact(root.model_archive, ml / "extracted").root


def our_models(work: Path) -> dict[str, Path]:
    """Each SavedModel our algorithms write, trained for one epoch on generated data."""
    from tasks.algorithms.image_classification_tf.hub.pretrain import save_feature_vector
    from tasks.algorithms.image_classification_tf.hub.registry import get_model
    from tasks.algorithms.image_classification_tf.hyperparameters import DEFAULT_MODEL_ID
    from tasks.contract import MLRoot
    from tasks.data.lst import list_class_folders, split_entries
    from tasks.data.pack import pack_lst
    from tasks.data.synthetic import make_scenes_dataset, make_shapes_dataset

    shapes = make_shapes_dataset(work / "shapes", per_class=8, size=32)
    module = save_feature_vector(work / "hub" / "module")
    cache = work / "tfhub-cache"
    handle = get_model(DEFAULT_MODEL_ID).feature_vector
    shutil.copytree(module, cache / hashlib.sha1(handle.encode()).hexdigest())
    found = {"hub module": module}
    module_ops = work / "module-ops.txt"  # what loading the module for training needs
    module_ops.write_text("".join(f"{op}\n" for op in model_ops(module)))

    listing = list_class_folders(shapes)
    split = split_entries(listing.entries, train_ratio=0.75, seed=3)
    ml = MLRoot(work / "ic")
    for name, entries in (("train", split.train), ("validation", split.validation)):
        ml.channel(name).mkdir(parents=True)
        pack_lst(
            entries, shapes, ml.channel(name) / f"{name}.rec", ml.channel(name) / f"{name}.idx"
        )
    ic = {
        "num_layers": "20", "image_shape": "3,32,32", "epochs": "1", "mini_batch_size": "8",
        "num_classes": str(len(listing.classes)), "num_training_samples": str(len(split.train)),
    }  # fmt: skip
    for label, extra in (("softmax", {}), ("multi-label, resize", {"resize": "36"})):
        folder = work / f"ic-{len(found)}"
        shutil.copytree(work / "ic", folder)
        root = _train("image-classification", folder, {**ic, **extra}, {})
        found[f"image classification ({label})"] = root / "saved_model"

    for top_only in ("True", "False"):
        ml = work / f"tf-{top_only}"
        MLRoot(ml).channel("training").parent.mkdir(parents=True)
        MLRoot(ml).channel("training").symlink_to(shapes, target_is_directory=True)
        hp = {"model_id": DEFAULT_MODEL_ID, "epochs": "1", "batch_size": "8",
              "train_only_top_layer": top_only}  # fmt: skip
        env = {"TFHUB_CACHE_DIR": str(cache), EXTRA_OPS_ENV: str(module_ops)}
        root = _train("image-classification-tf", ml, hp, env)
        found[f"transfer learning serving (top only {top_only})"] = root / "saved_model"
        for backbone in root.glob("backbone"):
            found[f"transfer learning backbone (top only {top_only})"] = backbone

    scenes = make_scenes_dataset(work / "scenes", train=4, validation=2, size=(40, 30))
    for head in ("fcn", "psp", "deeplab"):
        ml = work / f"seg-{head}"
        (ml / "input").mkdir(parents=True)
        (ml / "input" / "data").symlink_to(scenes, target_is_directory=True)
        hp = {
            "backbone": "resnet-50", "algorithm": head, "use_pretrained_model": "False",
            "num_classes": "3", "num_training_samples": "4", "base_size": "32",
            "crop_size": "24", "epochs": "1", "mini_batch_size": "2", "optimizer": "adam",
        }  # fmt: skip
        found[f"segmentation {head}"] = _train("semantic-segmentation", ml, hp, {}) / "saved_model"
    return found


def registry_families(work: Path) -> dict[str, Path]:
    """A Keras-applications model of each hub registry family, saved as a SavedModel as TF
    Hub's feature vectors are (random weights: the ops, not the numbers, matter)."""
    import keras
    import tensorflow as tf
    import tf_keras

    apps = tf_keras.applications
    families = {
        "MobileNet V2": (apps.MobileNetV2, 96),
        "MobileNet V3 small": (apps.MobileNetV3Small, 96),
        "MobileNet V3 large": (apps.MobileNetV3Large, 96),
        "EfficientNet B0": (apps.EfficientNetB0, 96),
        "EfficientNet V2 B0": (apps.EfficientNetV2B0, 96),
        "ResNet V1 50": (apps.ResNet50, 64),
        "ResNet V2 50 (BiT)": (apps.ResNet50V2, 64),
        "Inception V3": (apps.InceptionV3, 96),
        "Inception-ResNet V2": (apps.InceptionResNetV2, 96),
    }
    found = {}
    # A plug-in algorithm's Keras 3 model, saved the plain TensorFlow way.
    plain = keras.Sequential(
        [keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3), keras.layers.Dense(3)]
    )
    tf.saved_model.save(plain, str(work / "keras3"))
    found["Keras 3 model (tf.saved_model.save)"] = work / "keras3"
    for name, (build, size) in families.items():
        model = build(input_shape=(size, size, 3), include_top=False, weights=None, pooling="avg")
        path = work / "families" / name.replace(" ", "_")
        tf.saved_model.save(model, str(path))
        found[name] = path
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help=f"rewrite {ALLOWED_OPS_FILE.name}")
    args = parser.parse_args()
    used = defaultdict(set)
    with tempfile.TemporaryDirectory() as tmp:
        models = {**our_models(Path(tmp)), **registry_families(Path(tmp))}
        for name, folder in models.items():
            for op in model_ops(folder):
                used[op].add(name)
    for op in sorted(used):
        print(f"{op}\t{', '.join(sorted(used[op]))}")
    if args.write:
        derived = "".join(f"{op}\n" for op in sorted(used))
        ALLOWED_OPS_FILE.write_text(f"{HEADER}{derived}\n{HUB_EXPORT_OPS}")
        print(f"wrote {len(used)} ops to {ALLOWED_OPS_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
