"""`make bench-transfer`: fine-tuning images/s of image-classification-tf against a plain
tf-keras + hub.KerasLayer script written the way the reference's training script is (same
module, data, batch size, epochs), side by side in one run; the table goes to docs/benchmarks.md.

The module is MobileNet V2 1.00 224's architecture (tf_keras.applications, random weights: the
same computation as the hub model, nothing downloaded). Both sides are timed as whole processes
(import, loading, data, training, validation, saving the model: the reference its SavedModel
as TF Hub's tutorial does, ours its model.tar.gz).
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmark_report import (
    ENV,
    PINNED,
    ROOT,
    RUNS,
    TRAINER_PYTHON,
    alternating,
    benchmark_parser,
    pair_row,
    timed,
    write_section,
)

MODEL_ID = "tensorflow-ic-imagenet-mobilenet-v2-100-224-classification-4"

MAKE_MODULE = """
import sys, tensorflow as tf, tf_keras
net = tf_keras.applications.MobileNetV2(
    input_shape=(224, 224, 3), include_top=False, pooling="avg", weights=None)
tf.saved_model.save(net, sys.argv[1])
"""

# As the reference's script and TF Hub's tutorial do it: image_dataset_from_directory, rescaling,
# hub.KerasLayer -> Dropout -> Dense, model.fit with validation, then tf.saved_model.save of the
# model (what a training job is for: ours writes its model.tar.gz).
REFERENCE = """
import sys, tensorflow as tf, tensorflow_hub as hub, tf_keras
data, module, batch, epochs, top_only, saved = sys.argv[1:7]
batch, epochs, top_only = int(batch), int(epochs), top_only == "True"
split = dict(validation_split=0.2, seed=100, image_size=(224, 224), batch_size=batch,
             label_mode="categorical")
train = tf_keras.utils.image_dataset_from_directory(data, subset="training", **split)
val = tf_keras.utils.image_dataset_from_directory(data, subset="validation", **split)
classes = len(train.class_names)
rescale = tf_keras.layers.Rescaling(1 / 255)
train = train.map(lambda x, y: (rescale(x), y)).prefetch(tf.data.AUTOTUNE)
val = val.map(lambda x, y: (rescale(x), y)).prefetch(tf.data.AUTOTUNE)
model = tf_keras.Sequential([
    tf_keras.Input((224, 224, 3)),
    hub.KerasLayer(module, trainable=not top_only),
    tf_keras.layers.Dropout(0.2),
    tf_keras.layers.Dense(classes, kernel_regularizer=tf_keras.regularizers.l2(1e-4)),
])
model.compile(optimizer=tf_keras.optimizers.Adam(0.001),
              loss=tf_keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1),
              metrics=["accuracy"])
model.fit(train, validation_data=val, epochs=epochs, verbose=0)
tf.saved_model.save(model, saved)
"""


def wall_seconds(command: list) -> float:
    """The whole process' wall time."""
    return timed(command)[0]


def ml_root(root: Path, data: Path, module: Path, hp: dict) -> Path:
    (root / "input" / "data").mkdir(parents=True)
    (root / "input" / "data" / "training").symlink_to(data, target_is_directory=True)
    # The model channel is the hub module's folder (a SavedModel), as the pipeline stages it.
    (root / "input" / "data" / "model").symlink_to(module, target_is_directory=True)
    (root / "input" / "config").mkdir(parents=True)
    (root / "input" / "config" / "hyperparameters.json").write_text(json.dumps(hp))
    return root


def main() -> int:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--per-class", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--runs", type=int, default=RUNS)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from tasks.data.synthetic import make_shapes_dataset

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-transfer-") as tmp:
        tmp = Path(tmp)
        data = make_shapes_dataset(tmp / "data", per_class=args.per_class, size=128)
        module = tmp / "module"
        timed([TRAINER_PYTHON, "-c", MAKE_MODULE, module])
        # A model channel's hub module runs only when the deployment pins it (docs/security.md).
        pin = [TRAINER_PYTHON, "-m", "tasks.hub", "digest", module]
        digest = subprocess.run(pin, env=ENV, capture_output=True, text=True, check=True)
        ENV["VISION_PIPELINES_TRUSTED_MODULES"] = digest.stdout.strip().splitlines()[-1]
        images = 4 * args.per_class
        trained = (images - round(images * 0.2)) * args.epochs
        runs = itertools.count()
        for top_only in ("True", "False"):

            def reference(top_only: str = top_only) -> float:
                """The plain script's whole process, saving into a fresh folder."""
                command = [TRAINER_PYTHON, "-c", REFERENCE, data, module, args.batch_size]
                command += [args.epochs, top_only, tmp / f"reference-{next(runs)}"]
                return wall_seconds(command)

            hp = {
                "model_id": MODEL_ID,
                "epochs": str(args.epochs),
                "batch_size": str(args.batch_size),
                "train_only_top_layer": top_only,
            }

            def ours(top_only: str = top_only, hp: dict = hp) -> float:
                """Our whole process, in a fresh ml-root (a used one would resume)."""
                root = ml_root(tmp / f"ml-{top_only}-{next(runs)}", data, module, hp)
                command = [TRAINER_PYTHON, "-m", "tasks.train"]
                command += ["--algorithm", "image-classification-tf", "--ml-root", root]
                return wall_seconds(command)

            seconds = alternating([reference, ours], args.runs)
            rates = [[trained / t for t in side] for side in seconds]
            what = (
                f"MobileNet V2 224, train_only_top_layer={top_only}, {images} images, "
                f"batch {args.batch_size}, {args.epochs} epochs"
            )
            rows.append(pair_row(what, *rates, "img/s", digits=1))
    write_section(
        args.output,
        "Transfer learning (`make bench-transfer`)",
        "Command: `make bench-transfer` (`.venv/bin/python scripts/bench_transfer.py`), on the "
        f"build machine ({os.cpu_count()} cores, CPU). Reference: a plain tf-keras script as "
        "the reference's training script and TF Hub's tutorial write it "
        "(`image_dataset_from_directory`, `Rescaling`, `hub.KerasLayer` -> Dropout -> Dense, "
        "`fit` with validation, `tf.saved_model.save` of the model); ours: `python -m "
        "tasks.train --algorithm image-classification-tf` (parallel decode, cache, prefetch; a "
        "frozen backbone runs once per image). Same module (MobileNet V2's architecture), data, "
        "batch, epochs; images/s = training images x epochs / whole-process wall time, the "
        f"model saved included. Median (range) of {args.runs} runs, the two alternating; the "
        "speed-up's range from each run's pair. " + PINNED,
        "| benchmark | reference script | ours | speed-up |",
        rows,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
