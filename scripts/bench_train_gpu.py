"""GPU training throughput: our Keras 3 ResNet-50 on the JAX backend in bfloat16 against
PyTorch's reference torchvision ResNet-50 (bfloat16 autocast, channels-last), same batch, same
224x224 random data, same machine, side by side.

Runs on a lent GPU machine (no TensorFlow there): carry the keras wheel and its pure-Python
dependencies (keras, namex, optree) as described in the device tool's README, then
`python3 scripts/bench_train_gpu.py --output $OUT/gpu.md`. Prints one table row per framework.

`--scaling`: instead, the same ResNet-50 data-parallel on 1 GPU against all GPUs of the machine
(keras.distribution.DataParallel), the same batch per GPU: images/s of each and the ratio (1 by
construction on a one-GPU machine; the row says how many there were).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmark_report import run_rate

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

TORCH = """
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
for _ in range(5):
    step()
torch.cuda.synchronize()
start = time.perf_counter()
for _ in range(steps):
    step()
torch.cuda.synchronize()
print(batch * steps / (time.perf_counter() - start))
"""


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--output", type=Path)
    parser.add_argument("--scaling", action="store_true", help="1 GPU against all (per GPU batch)")
    args = parser.parse_args()
    if args.scaling:
        gpus = int(run_rate(sys.executable, COUNT))
        one = run_rate(sys.executable, KERAS_JAX, args.batch, args.steps, 1)
        every = run_rate(sys.executable, KERAS_JAX, args.batch, args.steps, 0)
        row = (
            f"| ResNet-50, batch {args.batch} per GPU, 224x224, bfloat16 | {one:.0f} img/s | "
            f"{every:.0f} img/s on {gpus} GPU(s) | **{every / one:.2f}x** |"
        )
    else:
        torch_rate = run_rate(sys.executable, TORCH, args.batch, args.steps)
        keras_rate = run_rate(sys.executable, KERAS_JAX, args.batch, args.steps, "default")
        row = (
            f"| ResNet-50, batch {args.batch}, 224x224, bfloat16 | {torch_rate:.0f} img/s | "
            f"{keras_rate:.0f} img/s | **{keras_rate / torch_rate:.2f}x** |"
        )
    print(row)
    if args.output:
        args.output.write_text(row + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
