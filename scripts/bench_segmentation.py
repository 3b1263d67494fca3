"""`make bench-segmentation`: training throughput of our FCN, PSP and DeepLabV3 on the dilated
ResNet-50 against GluonCV 0.10.5's same models (MXNet 1.9.1), side by side in one run.

Each framework runs in its own environment (.venv-trainer, .venv-mxnet): 2 warm-up steps, then
timed steps on random images and labels, auxiliary head on, SGD with momentum; images/s and the
ratio go into docs/benchmarks.md.
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
from tasks.algorithms.semantic_segmentation.network import SegmentationLoss, build_network
head, batch, size, steps = sys.argv[1], *map(int, sys.argv[2:5])
model = build_network(head, 50, 21)
model.compile(optimizer=keras.optimizers.SGD(0.001, momentum=0.9, weight_decay=1e-4),
              loss=SegmentationLoss(21))
x = np.random.rand(batch, size, size, 3).astype("float32") * 255
y = np.random.randint(0, 21, size=(batch, size, size))
"""
    + KERAS_TIMED
)

GLUON = (
    """
import sys, time
import mxnet as mx
from mxnet import autograd, gluon
from gluoncv.model_zoo import get_deeplab, get_fcn, get_psp
from gluoncv.loss import MixSoftmaxCrossEntropyLoss
head, batch, size, steps = sys.argv[1], *map(int, sys.argv[2:5])
build = {"fcn": get_fcn, "psp": get_psp, "deeplab": get_deeplab}[head]
net = build(dataset="pascal_voc", backbone="resnet50", pretrained=False, pretrained_base=False,
            aux=True, crop_size=size, base_size=size)
net.initialize(mx.init.Xavier())
net.hybridize(static_alloc=True, static_shape=True)
trainer = gluon.Trainer(net.collect_params(), "sgd",
                        {"learning_rate": 0.001, "momentum": 0.9, "wd": 1e-4})
loss_fn = MixSoftmaxCrossEntropyLoss(aux=True, aux_weight=0.2)
x = mx.nd.random.uniform(shape=(batch, 3, size, size))
y = mx.nd.array(mx.nd.random.randint(0, 21, shape=(batch, size, size)).asnumpy())
def step():
    with autograd.record():
        loss = loss_fn(*net(x), y)
    loss.backward()
    trainer.step(batch)
    mx.nd.waitall()
"""
    + GLUON_TIMED
)


def main() -> int:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--sizes", default="64:8,480:2", help="crop:batch pairs")
    parser.add_argument("--heads", default="fcn,psp,deeplab")
    parser.add_argument("--runs", type=int, default=RUNS)
    args = parser.parse_args()
    rows = []
    for pair in args.sizes.split(","):
        size, batch = (int(v) for v in pair.split(":"))
        for head in args.heads.split(","):
            gluon, ours = snippet_rates(
                [(MXNET_PYTHON, GLUON), (TRAINER_PYTHON, OURS)],
                head,
                batch,
                size,
                args.steps,
                runs=args.runs,
            )
            name = head.upper() if head != "deeplab" else "DeepLabV3"
            rows.append(
                pair_row(f"{name} ResNet-50, crop {size}, batch {batch}", gluon, ours, "img/s")
            )
    write_section(
        args.output,
        "Segmentation training throughput on CPU (`make bench-segmentation`)",
        "Command: `make bench-segmentation` (`.venv/bin/python scripts/bench_segmentation.py "
        f"--steps {args.steps} --sizes {args.sizes}`): training steps on random images after 2 "
        f"warm-up steps, {args.steps} timed, on the build machine ({os.cpu_count()} cores, no "
        "GPU), 21 classes, auxiliary head on. GluonCV 0.10.5 "
        "`get_fcn|get_psp|get_deeplab(backbone='resnet50')` (MXNet 1.9.1, hybridized) "
        "vs our Keras 3 networks on TensorFlow 2.21. Median (range) of "
        f"{args.runs} runs, the two alternating; the speed-up's range from each run's pair. "
        + PINNED,
        "| model | GluonCV (MXNet) | ours (Keras 3, TensorFlow) | speed-up |",
        rows,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
