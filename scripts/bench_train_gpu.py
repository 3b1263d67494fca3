"""GPU training throughput: our Keras 3 ResNet-50 on the JAX backend in bfloat16 against
PyTorch's reference torchvision ResNet-50 (bfloat16 autocast, channels-last), same batch, same
224x224 random data, same machine, side by side.

Runs on a lent GPU machine (no TensorFlow there): carry the keras wheel and its pure-Python
dependencies (keras, namex, optree) as described in the device tool's README, then
`python3 scripts/bench_train_gpu.py --output $OUT/gpu.md`. Prints one table row per framework.

`--scaling`: instead, the same ResNet-50 data-parallel on 1 GPU against all GPUs of the machine
(keras.distribution.DataParallel), the same batch per GPU: images/s of each and the ratio (1 by
construction on a one-GPU machine; the row says how many there were).

`--segmentation`: our FCN on the dilated ResNet-50 (auxiliary head on, our loss) on JAX in
bfloat16 against torchvision's `fcn_resnet50` (aux head, bfloat16 autocast, channels-last), the
same crop and batch, 21 classes.

`--endpoint MODEL.tar.gz`: `python -m tasks.serve` on the GPU with 1, 8 and 32 clients against
the same model's plain Keras loop (decode, resize, `predict_on_batch` of one image), as
scripts/bench_serve.py measures it on CPU; it needs TensorFlow (the serving signature), so on a
machine without it the row says so instead of a number.

Every row is the median (range) of 3 runs, the two sides alternating.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

from benchmark_report import (
    RUNS,
    alternating,
    pair_row,
    ratio_text,
    ratios,
    run_rate,
    snippet_rates,
    spread,
)
from PIL import Image

KERAS_JAX = """
import os, sys, time
os.environ["KERAS_BACKEND"] = "jax"
import jax, keras, numpy as np
from tasks.backbones.resnet import build_resnet
per_device, steps, count = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
devices = 1
if count != "default":  # data-parallel over the first `count` GPUs (0: all)
    chosen = jax.devices()[: int(count) or None]
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=chosen))
    devices = len(chosen)
keras.mixed_precision.set_global_policy("mixed_bfloat16")
model = build_resnet(50, image_shape=(3, 224, 224), num_classes=1000)
model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9, weight_decay=1e-4),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=True)
batch = per_device * devices
x = np.random.rand(batch, 224, 224, 3).astype("float32") * 255
y = np.random.randint(0, 1000, size=batch)
for _ in range(5):
    model.train_on_batch(x, y)
start = time.perf_counter()
for _ in range(steps):
    loss = model.train_on_batch(x, y)
float(loss)  # wait for the device
print(batch * steps / (time.perf_counter() - start))
"""

COUNT = "import jax; print(len(jax.devices()))"

TORCH_TIMED = """
for _ in range(5):
    step()
torch.cuda.synchronize()
start = time.perf_counter()
for _ in range(steps):
    step()
torch.cuda.synchronize()
print(batch * steps / (time.perf_counter() - start))
"""
"""Warm-up, then `steps` of the snippet's `step()` timed on the device: images/s."""

SEGMENTATION_OURS = """
import os, sys, time
os.environ["KERAS_BACKEND"] = "jax"
import keras, numpy as np
from tasks.algorithms.semantic_segmentation.network import SegmentationLoss, build_network
batch, size, steps = map(int, sys.argv[1:4])
keras.mixed_precision.set_global_policy("mixed_bfloat16")
model = build_network("fcn", 50, 21)
model.compile(optimizer=keras.optimizers.SGD(0.001, momentum=0.9, weight_decay=1e-4),
              loss=SegmentationLoss(21), jit_compile=True)
x = np.random.rand(batch, size, size, 3).astype("float32") * 255
y = np.random.randint(0, 21, size=(batch, size, size))
for _ in range(3):
    model.train_on_batch(x, y)
start = time.perf_counter()
for _ in range(steps):
    loss = model.train_on_batch(x, y)
float(np.asarray(loss).ravel()[0])  # wait for the device
print(batch * steps / (time.perf_counter() - start))
"""

SEGMENTATION_TORCH = (
    """
import sys, time, torch, torchvision
batch, size, steps = map(int, sys.argv[1:4])
model = torchvision.models.segmentation.fcn_resnet50(num_classes=21, aux_loss=True,
                                                     weights=None, weights_backbone=None)
model = model.cuda().to(memory_format=torch.channels_last)
optimizer = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9, weight_decay=1e-4)
loss_fn = torch.nn.CrossEntropyLoss()
x = torch.rand(batch, 3, size, size, device="cuda").to(memory_format=torch.channels_last)
y = torch.randint(0, 21, (batch, size, size), device="cuda")
def step():
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model(x)
        loss = loss_fn(out["out"], y) + 0.2 * loss_fn(out["aux"], y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
"""
    + TORCH_TIMED
)

TORCH = (
    """
import sys, time, torch, torchvision
batch, steps = int(sys.argv[1]), int(sys.argv[2])
model = torchvision.models.resnet50().cuda().to(memory_format=torch.channels_last)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
loss_fn = torch.nn.CrossEntropyLoss()
x = torch.rand(batch, 3, 224, 224, device="cuda").to(memory_format=torch.channels_last)
y = torch.randint(0, 1000, (batch,), device="cuda")
def step():
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = loss_fn(model(x), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
"""
    + TORCH_TIMED
)


def endpoint_rows(model: Path, runs: int) -> list[str]:
    """The endpoint on this machine's GPU against its Keras loop (needs TensorFlow)."""
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        return [
            "| endpoint | - | - | not measured: no TensorFlow on this machine (the serving "
            "signature needs it) |"
        ]
    from bench_serve import CLIENTS, _measures, keras_loop, load

    from tests.serving import served

    images = []
    for i in range(16):
        buffer = io.BytesIO()
        Image.new("RGB", (224, 224), (i * 15, 80, 200 - i * 10)).save(buffer, format="JPEG")
        images.append(buffer.getvalue())
    loop = keras_loop(model, images, 224)
    with served(model) as url:
        load(url, images, 1, 10)
        floor, *loads = alternating(_measures(url, images, loop, 320), runs)
    rows = []
    for clients, results in zip(CLIENTS, loads, strict=True):
        rates = [r["rate"] for r in results]
        p50 = [r["p50"] for r in results]
        rows.append(
            f"| endpoint, {clients} client(s), p50 {spread(p50, 1)} ms | Keras loop "
            f"{spread([f['rate'] for f in floor], 0)} img/s | {spread(rates, 0)} img/s | "
            f"{ratio_text(ratios([f['rate'] for f in floor], rates, lower_is_better=False))} |"
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--output", type=Path)
    parser.add_argument("--scaling", action="store_true", help="1 GPU against all (per GPU batch)")
    parser.add_argument("--segmentation", action="store_true", help="FCN ResNet-50 training")
    parser.add_argument("--crop", type=int, default=480, help="segmentation crop size")
    parser.add_argument("--endpoint", type=Path, help="a model.tar.gz to serve on the GPU")
    args = parser.parse_args()
    python = sys.executable
    if args.endpoint:
        rows = endpoint_rows(args.endpoint, args.runs)
    elif args.segmentation:
        what = f"FCN ResNet-50, batch {args.batch}, crop {args.crop}, bfloat16"
        torch_rates, ours = snippet_rates(
            [(python, SEGMENTATION_TORCH), (python, SEGMENTATION_OURS)],
            args.batch,
            args.crop,
            args.steps,
            runs=args.runs,
        )
        rows = [pair_row(f"{what}: torchvision / ours", torch_rates, ours, "img/s", digits=0)]
    elif args.scaling:
        gpus = int(run_rate(python, COUNT))
        one, every = alternating(
            [
                lambda: run_rate(python, KERAS_JAX, args.batch, args.steps, 1),
                lambda: run_rate(python, KERAS_JAX, args.batch, args.steps, 0),
            ],
            args.runs,
        )
        what = f"ResNet-50, batch {args.batch} per GPU, 224x224, bfloat16, {gpus} GPU(s)"
        rows = [pair_row(f"{what}: 1 GPU / all", one, every, "img/s", digits=0)]
    else:
        torch_rates, keras_rates = alternating(
            [
                lambda: run_rate(python, TORCH, args.batch, args.steps),
                lambda: run_rate(python, KERAS_JAX, args.batch, args.steps, "default"),
            ],
            args.runs,
        )
        what = f"ResNet-50, batch {args.batch}, 224x224, bfloat16"
        rows = [
            pair_row(f"{what}: torchvision / ours", torch_rates, keras_rates, "img/s", digits=0)
        ]
    if args.output:
        args.output.write_text("\n".join(rows) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
