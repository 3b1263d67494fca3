from __future__ import annotations

import io

import pytest
from PIL import Image

from tasks.data.lst import LstEntry
from tasks.data.pack import PackError, PackOptions, pack_lst
from tasks.data.recordio import RecordIOReader, read_index, unpack


@pytest.fixture
def images(tmp_path):
    root = tmp_path / "images"
    root.mkdir()
    entries = []
    for i, size in enumerate([(64, 48), (30, 90), (50, 50)]):
        Image.new("RGB", size, (i * 80, 10, 200)).save(root / f"{i}.jpg", quality=90)
        entries.append(LstEntry(10 + i, (float(i),), f"{i}.jpg"))
    return root, entries


def read_all(rec):
    with RecordIOReader(rec) as reader:
        return [unpack(r.payload) for r in reader]


def test_pass_through_stores_file_bytes_in_list_order(tmp_path, images):
    root, entries = images
    rec, idx = tmp_path / "o.rec", tmp_path / "o.idx"
    count = pack_lst(entries, root, rec, idx, options=PackOptions(pass_through=True))
    records = read_all(rec)
    assert count == 3
    assert [h.id for h, _ in records] == [10, 11, 12]
    assert [h.label for h, _ in records] == [(0.0,), (1.0,), (2.0,)]
    assert [img for _, img in records] == [(root / f"{i}.jpg").read_bytes() for i in range(3)]
    assert list(read_index(idx)) == [10, 11, 12]


@pytest.mark.parametrize("workers", [1, 2])
def test_resize_sets_the_shorter_side(tmp_path, images, workers):
    root, entries = images
    rec = tmp_path / "o.rec"
    pack_lst(entries, root, rec, tmp_path / "o.idx", options=PackOptions(resize=24),
             num_workers=workers)
    sizes = [Image.open(io.BytesIO(img)).size for _, img in read_all(rec)]
    assert sizes == [(32, 24), (24, 72), (24, 24)]


def test_pack_label_writes_all_labels(tmp_path, images):
    root, _ = images
    entries = [LstEntry(0, (1.0, 0.0, 1.0), "0.jpg")]
    pack_lst(entries, root, tmp_path / "m.rec", tmp_path / "m.idx",
             options=PackOptions(pass_through=True, pack_label=True))
    assert read_all(tmp_path / "m.rec")[0][0].label == (1.0, 0.0, 1.0)


def test_missing_and_escaping_paths_are_refused(tmp_path, images):
    root, entries = images
    with pytest.raises(PackError, match="must be relative to the image root"):
        pack_lst([LstEntry(0, (0.0,), "../secret.jpg")], root, tmp_path / "a.rec",
                 tmp_path / "a.idx", source="train.lst")
    with pytest.raises(PackError, match="train.lst: 1 listed image"):
        pack_lst([LstEntry(0, (0.0,), "missing.jpg")], root, tmp_path / "a.rec",
                 tmp_path / "a.idx", source="train.lst")


def test_undecodable_image_is_named(tmp_path, images):
    root, _ = images
    (root / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(PackError, match="bad.jpg: cannot decode image"):
        pack_lst([LstEntry(0, (0.0,), "bad.jpg")], root, tmp_path / "a.rec", tmp_path / "a.idx")
