"""`make bench-train`: training throughput of our Keras ResNet against MXNet Gluon's ResNet v1 of
the same depth, batch and image size, on this CPU, side by side in one run.

Each framework runs in its own environment (.venv-trainer, .venv-mxnet): a few warm-up steps,
then timed steps on random data; images/s and the ratio go into docs/benchmarks.md. The GPU
comparison (Keras on JAX in bfloat16 vs PyTorch's ResNet-50) is scripts/bench_train_gpu.py.
"""

from __future__ import annotations

import os
import sys

from benchmark_report import (
    GLUON_TIMED,
    KERAS_TIMED,
    MXNET_PYTHON,
    PINNED,
    RUNS,
    TRAINER_PYTHON,
    benchmark_parser,
    pair_row,
    snippet_rates,
    write_section,
)

OURS = (
    """
import sys, time
import numpy as np, keras
from tasks.backbones.resnet import build_resnet
depth, batch, size, steps = map(int, sys.argv[1:5])
model = build_resnet(depth, image_shape=(3, size, size), num_classes=1000)
model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9, weight_decay=1e-4),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
x = np.random.rand(batch, size, size, 3).astype("float32") * 255
y = np.random.randint(0, 1000, size=batch)
"""
    + KERAS_TIMED
)

GLUON = (
    """
import sys, time
import mxnet as mx
from mxnet import autograd, gluon
depth, batch, size, steps = map(int, sys.argv[1:5])
net = gluon.model_zoo.vision.get_resnet(1, depth, classes=1000)
net.initialize(mx.init.Xavier())
net.hybridize(static_alloc=True, static_shape=True)
trainer = gluon.Trainer(net.collect_params(), "sgd",
                        {"learning_rate": 0.1, "momentum": 0.9, "wd": 1e-4})
loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
x = mx.nd.random.uniform(shape=(batch, 3, size, size))
y = mx.nd.array(mx.nd.random.randint(0, 1000, shape=(batch,)).asnumpy())
def step():
    with autograd.record():
        loss = loss_fn(net(x), y)
    loss.backward()
    trainer.step(batch)
    mx.nd.waitall()
"""
    + GLUON_TIMED
)


def main() -> int:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--runs", type=int, default=RUNS)
    args = parser.parse_args()
    rows = []
    for depth, batch, size in ((18, 8, 224), (50, 8, 224)):
        gluon, ours = snippet_rates(
            [(MXNET_PYTHON, GLUON), (TRAINER_PYTHON, OURS)],
            depth,
            batch,
            size,
            args.steps,
            runs=args.runs,
        )
        what = f"ResNet-{depth} v1, batch {batch}, {size}x{size}, SGD momentum"
        rows.append(pair_row(what, gluon, ours, "img/s"))
    write_section(
        args.output,
        "Training throughput on CPU (`make bench-train`)",
        "Command: `make bench-train` (`.venv/bin/python scripts/bench_train.py`): training steps "
        f"on random data after 2 warm-up steps, {args.steps} timed steps, on the build machine "
        f"({os.cpu_count()} cores, no GPU). MXNet 1.9.1 Gluon model zoo `get_resnet(1, depth)` vs "
        f"our Keras 3 ResNet v1 on TensorFlow 2.21. Median (range) of {args.runs} runs, the two "
        "alternating; the speed-up's range from each run's pair. " + PINNED,
        "| model | MXNet Gluon | ours (Keras 3, TensorFlow) | speed-up |",
        rows,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
