"""Pipe input mode against File mode on this machine (`make bench-pipe`).

A RecordIO file of generated 224x224 JPEGs (noise, so they are the size of photos) is put in a
local S3 emulator (moto's server). File mode copies it to the ml-root (`tasks.job.prepare`)
and reads the copy; Pipe mode reads the object where it lies through the same record reader
(tasks/streaming.py: ranged reads with read-ahead). Measured side by side:
- record read throughput (MB/s): every record read once, in order;
- the training input pipeline (images/s): the trainer's own `training_dataset` (decode,
  crop augmentation, batches of 32) for one epoch;
- time to the first batch (staging included) and the bytes of the dataset on the ml-root.
The table goes into docs/benchmarks.md.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from scripts.benchmark_report import (  # noqa: E402
    RUNS,
    alternating,
    benchmark_parser,
    ratio_text,
    ratios,
    spread,
    write_section,
)
from tasks.contract import MLRoot  # noqa: E402
from tasks.data.recordio_format import ImageHeader, RecordIOReader, RecordIOWriter, pack  # noqa: E402

BUCKET = "bench"


def make_rec(path: Path, count: int, size: int) -> int:
    """`count` noise JPEGs in 4 classes packed into `path`; its size in bytes."""
    rng = np.random.default_rng(0)
    with RecordIOWriter(path, path.with_suffix(".idx")) as writer:
        for i in range(count):
            buffer = io.BytesIO()
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
            writer.write(pack(ImageHeader((float(i % 4),), i), buffer.getvalue()), key=i)
    return path.stat().st_size


def moto(port: int) -> subprocess.Popen:
    server = subprocess.Popen(
        [ROOT / ".venv" / "bin" / "moto_server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return server
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("moto_server did not start")


def read_all(location: str | Path) -> float:
    """Seconds to read every record of a .rec in order."""
    started = time.perf_counter()
    with RecordIOReader(location) as reader:
        for _ in reader:
            pass
    return time.perf_counter() - started


def input_pipeline(ml: MLRoot, count: int) -> tuple[float, float]:
    """(seconds to the first batch, images/s of one epoch) of the trainer's training input."""
    from tasks.algorithms.image_classification.data import training_dataset
    from tasks.classification.channels import load_channel
    from tasks.contract import read_input_data_config

    started = time.perf_counter()
    images = load_channel(
        ml.channel("train"),
        "train",
        config=read_input_data_config(ml).get("train", {}),
        num_classes=4,
        multi_label=False,
    )
    dataset = training_dataset(
        images, image_shape=(3, 224, 224), batch_size=32, augmentation="crop", seed=0
    )
    batches = iter(dataset)
    next(batches)
    first = time.perf_counter() - started
    started = time.perf_counter()
    seen = 32 + sum(int(b[0].shape[0]) for b in batches)
    if seen != count:
        raise RuntimeError(f"one epoch gave {seen} images, not {count}")
    return first, count / (time.perf_counter() - started)


def disk_bytes(folder: Path) -> int:
    """Bytes of the files under `folder` (links not followed)."""
    files = folder.rglob("*") if folder.exists() else ()
    return sum(p.stat().st_size for p in files if p.is_file() and not p.is_symlink())


def main() -> int:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--images", type=int, default=1500)
    parser.add_argument("--runs", type=int, default=RUNS)
    args = parser.parse_args()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}",
    )
    from s3fs import S3FileSystem

    from tasks.job import prepare

    server = moto(port)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            rec = work / "data" / "train.rec"
            rec.parent.mkdir()
            size = make_rec(rec, args.images, 224)
            fs = S3FileSystem()
            fs.mkdir(BUCKET)
            fs.put_file(str(rec), f"{BUCKET}/train/train.rec")
            fs.put_file(str(rec.with_suffix(".idx")), f"{BUCKET}/train/train.idx")
            uri = f"s3://{BUCKET}/train"
            runs = iter(range(2 * args.runs))

            def measure(mode: str, config: dict) -> dict[str, float]:
                ml = MLRoot(work / f"ml-{mode}-{next(runs)}")
                started = time.perf_counter()
                prepare(ml, {"train": uri}, {}, config)
                staging = time.perf_counter() - started
                streamed = json.loads(ml.input_data_config_path.read_text())["train"].get("Uri")
                local = ml.channel("train") / "train.rec"
                seconds = read_all(f"{streamed}/train.rec" if streamed else local)
                # The second epoch's rate: the first one also warms TensorFlow up.
                (first, _), (_, rate) = (input_pipeline(ml, args.images) for _ in range(2))
                result = {
                    "mb_s": size / seconds / 2**20,
                    "pass_mb_s": size / (staging + seconds) / 2**20,
                    "first": staging + first,
                    "images_s": rate,
                    "disk": disk_bytes(ml.root / "input" / "data"),
                }
                print(mode, {k: round(v, 1) for k, v in result.items()}, flush=True)
                return result

            file, pipe = alternating(
                [
                    lambda: measure("File", {}),
                    lambda: measure("Pipe", {"train": {"TrainingInputMode": "Pipe"}}),
                ],
                args.runs,
            )
    finally:
        server.terminate()
        server.wait(timeout=10)

    def row(
        what: str, key: str, unit: str, digits: int, *, scale: float = 1.0, compared: bool = True
    ) -> str:
        sides = [[run[key] / scale for run in side] for side in (file, pipe)]
        ratio = ratio_text(ratios(*sides, lower_is_better=False)) if compared else ""
        return (
            f"| {what} | {spread(sides[0], digits, unit)} | {spread(sides[1], digits, unit)} "
            f"| {ratio} |"
        )

    rows = [
        row("record reads, in order (File: of the staged copy)", "mb_s", "MB/s", 0),
        row("first pass over the records, staging included", "pass_mb_s", "MB/s", 0),
        row("training input (decode, crop, batches of 32)", "images_s", "img/s", 0),
        row("first batch after the step starts (staging included)", "first", "s", 2),
        row("dataset bytes on the ml-root", "disk", "MiB", 1, scale=2**20, compared=False),
    ]
    write_section(
        args.output,
        "Pipe input mode (`make bench-pipe`)",
        "Command: `make bench-pipe` (`.venv-trainer/bin/python scripts/bench_pipe.py`): "
        f"{args.images} noise JPEGs of 224x224 in one RecordIO file ({size / 2**20:.0f} MiB) "
        "in moto's S3 server on localhost. File mode copies the channel to the ml-root "
        "(`tasks.job.prepare`) and reads the copy over an mmap; Pipe mode reads the object "
        "through the same record reader in ranged reads of 32 MiB, the next one fetched in the "
        "background. Training input: the trainer's "
        "`training_dataset`, the second of two "
        f"epochs. On the build machine ({os.cpu_count()} cores, no GPU). Goals: Pipe >= 0.8x "
        "File, no dataset bytes on the ml-root. Reads of the staged copy come from the page "
        "cache, so the read-only row compares the network with memory; the first pass is what "
        "a File-mode step does before its first epoch ends (copy, then read), and the training "
        "input (decoding bound) is what an epoch costs. Pipe's first batch comes later: its "
        "labels are checked in one streamed pass first, and the shuffle buffer fills. Median "
        f"(range) of {args.runs} runs, File and Pipe alternating, each in a fresh ml-root; the "
        "ratios' ranges from each run's pair.",
        "| measure | File | Pipe | Pipe / File |",
        rows,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
