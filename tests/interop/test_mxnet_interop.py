"""Our formats against the reference: MXNet 1.9.1's im2rec.py, mx.recordio and ImageRecordIter.

Runs in the isolated `.venv-mxnet` (mxnet 1.9.1, numpy 1.23.5, opencv 4.11): `make test-interop`.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest
from PIL import Image

from tasks.data.lst import LstEntry, write_lst
from tasks.data.recordio_format import MAGIC_BYTES, RecordIOReader, RecordIOWriter, read_index
from tasks.data.synthetic import make_shapes_dataset

pytestmark = pytest.mark.interop
ROOT = Path(__file__).resolve().parents[2]
IM2REC = Path(mx.__file__).parent / "tools" / "im2rec.py"


def run(args, cwd):
    return subprocess.run(
        [sys.executable, *map(str, args)],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT)},
    )


def im2rec_both(tmp_path, images, *flags):
    """Run MXNet's im2rec and ours with the same flags into mx/ and ours/."""
    outputs = {}
    for name, tool in (("mx", [IM2REC]), ("ours", ["-m", "tasks.im2rec"])):
        folder = tmp_path / name
        folder.mkdir(exist_ok=True)
        outputs[name] = run([*tool, *flags, folder / "data", images], cwd=ROOT).stdout
    return tmp_path / "mx", tmp_path / "ours", outputs


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = make_shapes_dataset(tmp_path_factory.mktemp("shapes"), per_class=12, size=48)
    Image.new("RGB", (60, 30), (255, 0, 0)).save(root / "circle" / "wide.png")
    return root


def test_list_mode_is_byte_identical(tmp_path, images):
    mx_dir, ours, out = im2rec_both(
        tmp_path, images, "--list", "--recursive", "--train-ratio", "0.7", "--test-ratio", "0.1"
    )
    for name in ("data_train.lst", "data_val.lst", "data_test.lst"):
        assert (mx_dir / name).read_bytes() == (ours / name).read_bytes(), name
    assert out["ours"] == out["mx"]  # the class map printed as "name label"


def test_chunks_and_no_shuffle_are_byte_identical(tmp_path, images):
    mx_dir, ours, _ = im2rec_both(
        tmp_path, images, "--list", "--recursive", "--chunks", "3", "--no-shuffle"
    )
    for i in range(3):
        assert (mx_dir / f"data_{i}.lst").read_bytes() == (ours / f"data_{i}.lst").read_bytes()


@pytest.mark.parametrize("multi_label", [False, True])
def test_pass_through_rec_and_idx_are_byte_identical(tmp_path, images, multi_label):
    paths = sorted(p.relative_to(images).as_posix() for p in images.rglob("*.jpg"))[:20]
    entries = [
        LstEntry(i * 3, (float(i % 4), float(i % 2), 1.0) if multi_label else (float(i % 4),), path)
        for i, path in enumerate(paths)
    ]
    flags = ["--pass-through"] + (["--pack-label"] if multi_label else [])
    for name in ("mx", "ours"):
        (tmp_path / name).mkdir()
        write_lst(tmp_path / name / "data.lst", entries)
    mx_dir, ours, _ = im2rec_both(tmp_path, images, *flags)
    assert (mx_dir / "data.rec").read_bytes() == (ours / "data.rec").read_bytes()
    assert (mx_dir / "data.idx").read_bytes() == (ours / "data.idx").read_bytes()


def test_we_read_mxnet_packed_records_exactly(tmp_path, images):
    mx_dir, _, _ = im2rec_both(tmp_path, images, "--list", "--recursive")
    run([IM2REC, "--resize", "32", "--quality", "90", mx_dir / "data", images], cwd=ROOT)
    reference = mx.recordio.MXIndexedRecordIO(
        str(mx_dir / "data.idx"), str(mx_dir / "data.rec"), "r"
    )
    expected = []
    for key in reference.keys:
        header, image = mx.recordio.unpack(reference.read_idx(key))
        expected.append(
            {
                "id": header.id,
                "id2": header.id2,
                "label": [float(header.label)],
                "image_sha256": hashlib.sha256(image).hexdigest(),
            }
        )
    dumped = run(["-m", "tasks.recordio", "dump", mx_dir / "data.rec"], cwd=ROOT).stdout
    ours = [json.loads(line) for line in dumped.splitlines()]
    assert [{k: r[k] for k in ("id", "id2", "label", "image_sha256")} for r in ours] == expected
    assert [r["offset"] for r in ours] == list(read_index(mx_dir / "data.idx").values())


def test_mxnet_reads_our_resized_records(tmp_path, images):
    _, ours, _ = im2rec_both(tmp_path, images, "--list", "--recursive")
    run(
        ["-m", "tasks.im2rec", "--resize", "32", "--num-thread", "2", ours / "data", images],
        cwd=ROOT,
    )
    listed = [line.split("\t") for line in (ours / "data.lst").read_text().splitlines()]
    record = mx.recordio.MXIndexedRecordIO(str(ours / "data.idx"), str(ours / "data.rec"), "r")
    assert record.keys == [int(row[0]) for row in listed]
    for key, row in zip(record.keys, listed, strict=True):
        header, img = mx.recordio.unpack_img(record.read_idx(key))
        assert header.id == key and header.label == float(row[1])
        assert min(img.shape[:2]) == 32
    it = mx.io.ImageRecordIter(
        path_imgrec=str(ours / "data.rec"), data_shape=(3, 32, 32), batch_size=7, shuffle=False
    )
    batch = next(iter(it))
    assert batch.data[0].shape == (7, 3, 32, 32)
    np.testing.assert_array_equal(batch.label[0].asnumpy(), [float(row[1]) for row in listed[:7]])


def test_continuation_records_both_ways(tmp_path):
    payloads = [b"abcd" + MAGIC_BYTES + b"efgh" + MAGIC_BYTES + b"x", MAGIC_BYTES * 3, b"plain"]
    writer = mx.recordio.MXRecordIO(str(tmp_path / "mx.rec"), "w")
    for p in payloads:
        writer.write(p)
    writer.close()
    with RecordIOWriter(tmp_path / "ours.rec") as ours:
        for p in payloads:
            ours.write(p)
    assert (tmp_path / "ours.rec").read_bytes() == (tmp_path / "mx.rec").read_bytes()
    with RecordIOReader(tmp_path / "mx.rec") as reader:
        assert [r.payload for r in reader] == payloads
    reader = mx.recordio.MXRecordIO(str(tmp_path / "ours.rec"), "r")
    assert [reader.read() for _ in payloads] == payloads


def test_our_jpeg_decodes_like_opencv_reads_it(tmp_path, images):
    _, ours, _ = im2rec_both(tmp_path, images, "--list", "--recursive")
    run(["-m", "tasks.im2rec", "--encoding", ".png", ours / "data", images], cwd=ROOT)
    record = mx.recordio.MXIndexedRecordIO(str(ours / "data.idx"), str(ours / "data.rec"), "r")
    header, bgr = mx.recordio.unpack_img(record.read_idx(record.keys[0]))
    _, raw = mx.recordio.unpack(record.read_idx(record.keys[0]))
    rgb = np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"))
    np.testing.assert_array_equal(bgr[:, :, ::-1], rgb)
