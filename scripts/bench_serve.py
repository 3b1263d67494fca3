"""The real-time endpoint under load on this machine (`make bench-serve`).

For ResNet-20 on 3x32x32 and ResNet-50 on 3x224x224 (trained one short epoch on generated
images), `python -m tasks.serve` on loopback answers 1 client, then 8 concurrent clients, each
sending one JPEG per request: p50 / p99 latency and images/s. Side by side, in the same run, a
plain Keras loop over the same images and weights (decode, resize, `predict_on_batch` of one
image), as a user would write it without a server; the ratio is the server's images/s at 8
clients over the loop's. Then a storm of 1,000 corrupt requests: the server must still answer,
its memory (RSS) before and after. The table goes into docs/benchmarks.md.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from scripts.bench_scaling import ml_root  # noqa: E402
from scripts.benchmark_report import benchmark_parser, write_section  # noqa: E402
from tasks.data.synthetic import make_shapes_dataset  # noqa: E402
from tests.serving import post, served  # noqa: E402

MODELS = {"ResNet-20, 3x32x32": (20, 32), "ResNet-50, 3x224x224": (50, 224)}


def train(work: Path, layers: int, size: int) -> tuple[Path, list[bytes]]:
    """A model.tar.gz of `layers` on `size` px images (one short epoch), and its images."""
    images = make_shapes_dataset(work / "images", per_class=10, size=size)
    ml = ml_root(work / "ml", images, epochs=1, batch=8)
    hp = json.loads(ml.hyperparameters_path.read_text())
    hp |= {"num_layers": str(layers), "image_shape": f"3,{size},{size}"}
    ml.hyperparameters_path.write_text(json.dumps(hp))
    command = [sys.executable, "-m", "tasks.train", "--algorithm", "image-classification"]
    subprocess.run(
        [*command, "--ml-root", str(ml.root)], cwd=ROOT, check=True, stdout=subprocess.DEVNULL
    )
    return ml.model_archive, [p.read_bytes() for p in sorted(images.rglob("*.jpg"))]


def load(url: str, images: list[bytes], clients: int, requests: int) -> dict[str, float]:
    """p50 / p99 latency (ms) and images/s of `requests` requests from `clients` threads."""

    def one(i: int) -> float:
        started = time.perf_counter()
        status, _, _ = post(url, images[i % len(images)], "image/jpeg")
        if status != 200:
            raise RuntimeError(f"request {i}: HTTP {status}")
        return time.perf_counter() - started

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        latencies = sorted(pool.map(one, range(requests)))
    seconds = time.perf_counter() - started
    return {
        "p50": 1000 * statistics.median(latencies),
        "p99": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "rate": requests / seconds,
    }


def keras_loop(model: Path, images: list[bytes], size: int, count: int) -> float:
    """Images/s of a plain Keras loop: decode, resize, `predict_on_batch` of one image (the
    fastest of Keras' own calls for one image: `predict` adds a dataset per call)."""
    import keras
    import tensorflow as tf

    from tasks.algorithms.image_classification.hyperparameters import (
        ImageClassificationHyperparameters,
    )
    from tasks.algorithms.image_classification.initial_weights import previous_model
    from tasks.artifact import extract_artifact

    with tempfile.TemporaryDirectory() as tmp:
        extracted = extract_artifact(model, Path(tmp))
        hp = ImageClassificationHyperparameters.from_strings(extracted.manifest.hyperparameters)
        network: keras.Model = previous_model(model.parent, hp)

    def predict(blob: bytes):
        pixels = tf.image.resize(tf.io.decode_jpeg(blob, channels=3), (size, size))
        return network.predict_on_batch(pixels[None])

    predict(images[0])  # warm-up
    started = time.perf_counter()
    for i in range(count):
        predict(images[i % len(images)])
    return count / (time.perf_counter() - started)


def rss_mib(pid: int) -> float:
    """Resident memory of the process listening (the server, a child of `served`'s process)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def server_pid(port: int) -> int:
    found = subprocess.run(
        ["pgrep", "-f", f"tasks.serve .*--port {port}"], capture_output=True, text=True
    )
    return int(found.stdout.split()[0])


def main() -> int:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    rows = []
    storm: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, (layers, size) in MODELS.items():
            model, images = train(Path(tmp) / str(layers), layers, size)
            with served(model, "--batch-wait-ms", "5") as url:
                load(url, images, 1, 10)  # warm-up
                one = load(url, images, 1, args.requests // 2)
                eight = load(url, images, 8, args.requests)
                if not storm:
                    pid = server_pid(int(url.rsplit(":", 1)[1]))
                    storm["before"] = rss_mib(pid)
                    with ThreadPoolExecutor(8) as pool:
                        statuses = set(
                            pool.map(
                                lambda i: post(url, b"\xff\xd8" + os.urandom(64), "image/jpeg")[0],
                                range(1000),
                            )
                        )
                    if statuses != {400}:
                        raise RuntimeError(f"corrupt requests got {statuses}")
                    load(url, images, 1, 5)  # still serving
                    storm["after"] = rss_mib(pid)
            loop = keras_loop(model, images, size, max(20, args.requests // 4))
            print(label, one, eight, f"keras loop {loop:.1f} img/s", flush=True)
            rows.append(
                f"| {label} | {one['p50']:.1f} / {one['p99']:.1f} ms | {one['rate']:.1f} | "
                f"{eight['p50']:.1f} / {eight['p99']:.1f} ms | {eight['rate']:.1f} | {loop:.1f} | "
                f"**{eight['rate'] / loop:.2f}x** |"
            )
    write_section(
        args.output,
        "Real-time endpoint (`make bench-serve`)",
        "Command: `make bench-serve` (`.venv-trainer/bin/python scripts/bench_serve.py`): "
        "`python -m tasks.serve` on loopback (defaults: batches of up to 32, 5 ms wait), one "
        f"JPEG per request, {args.requests // 2} requests from 1 client, then {args.requests} "
        "from 8 concurrent clients; against a plain Keras loop on the same weights and images "
        "(decode, resize, `model.predict_on_batch` of one image). On the build machine "
        f"({os.cpu_count()} cores, no GPU). Goal: 8 clients >= 1.0x the loop. 1,000 corrupt "
        f"requests (8 clients) all got 400 and the server went on serving; its memory was "
        f"{storm['before']:.0f} MiB before and {storm['after']:.0f} MiB after.",
        "| model | 1 client p50 / p99 | 1 client img/s | 8 clients p50 / p99 | 8 clients img/s "
        "| Keras loop img/s | 8 clients / loop |",
        rows,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
