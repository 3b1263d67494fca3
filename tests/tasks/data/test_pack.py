from __future__ import annotations

import io

import pytest
from PIL import Image

from tasks.data.lst import LstEntry
from tasks.data.pack import PackError, PackOptions, pack_lst
from tasks.data.recordio_format import RecordIOReader, read_index, unpack


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
    result = pack_lst(entries, root, rec, idx, options=PackOptions(pass_through=True))
    records = read_all(rec)
    assert result.records == 3 and result.skipped == []
    assert [h.id for h, _ in records] == [10, 11, 12]
    assert [h.label for h, _ in records] == [(0.0,), (1.0,), (2.0,)]
    assert [img for _, img in records] == [(root / f"{i}.jpg").read_bytes() for i in range(3)]
    assert list(read_index(idx)) == [10, 11, 12]


@pytest.mark.parametrize("workers", [1, 2])
def test_resize_sets_the_shorter_side(tmp_path, images, workers):
    root, entries = images
    rec = tmp_path / "o.rec"
    pack_lst(
        entries, root, rec, tmp_path / "o.idx", options=PackOptions(resize=24), num_workers=workers
    )
    sizes = [Image.open(io.BytesIO(img)).size for _, img in read_all(rec)]
    assert sizes == [(32, 24), (24, 72), (24, 24)]


def test_freed_image_memory_is_kept_while_packing_and_the_setting_restored(
    tmp_path, images, monkeypatch
):
    import tasks.data.pack as pack

    root, entries = images
    seen = []
    encode = pack.encode_image
    monkeypatch.setattr(
        pack, "encode_image", lambda *a: seen.append(Image.core.get_blocks_max()) or encode(*a)
    )
    before = Image.core.get_blocks_max()
    pack_lst(entries, root, tmp_path / "o.rec", tmp_path / "o.idx", options=PackOptions(resize=24))
    assert seen and min(seen) >= 2 and min(seen) > before
    assert Image.core.get_blocks_max() == before


def test_pack_label_writes_all_labels(tmp_path, images):
    root, _ = images
    entries = [LstEntry(0, (1.0, 0.0, 1.0), "0.jpg")]
    pack_lst(
        entries,
        root,
        tmp_path / "m.rec",
        tmp_path / "m.idx",
        options=PackOptions(pass_through=True, pack_label=True),
    )
    assert read_all(tmp_path / "m.rec")[0][0].label == (1.0, 0.0, 1.0)


def test_missing_and_escaping_paths_are_refused(tmp_path, images):
    root, entries = images
    with pytest.raises(PackError, match="must be relative to the image root"):
        pack_lst(
            [LstEntry(0, (0.0,), "../secret.jpg")],
            root,
            tmp_path / "a.rec",
            tmp_path / "a.idx",
            source="train.lst",
        )
    with pytest.raises(PackError, match=r"train.lst, line 7: .*missing.jpg: image file not found"):
        pack_lst(
            [LstEntry(0, (0.0,), "missing.jpg", line=7)],
            root,
            tmp_path / "a.rec",
            tmp_path / "a.idx",
            source="train.lst",
        )
    assert not (tmp_path / "a.rec").exists(), "a failed pack leaves no partial .rec"


def test_undecodable_image_is_named(tmp_path, images):
    root, _ = images
    (root / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(PackError, match="bad.jpg: cannot decode image"):
        pack_lst([LstEntry(0, (0.0,), "bad.jpg")], root, tmp_path / "a.rec", tmp_path / "a.idx")


def test_skip_bad_leaves_out_and_reports_unreadable_images(tmp_path, images):
    root, entries = images
    (root / "bad.jpg").write_bytes(b"\xff\xd8 truncated")
    listed = [*entries[:1], LstEntry(5, (0.0,), "bad.jpg", line=2), *entries[1:]]
    result = pack_lst(
        listed, root, tmp_path / "s.rec", tmp_path / "s.idx", skip_bad=True, source="x.lst"
    )
    assert result.records == 3
    assert len(result.skipped) == 1 and result.skipped[0].startswith("x.lst, line 2: ")
    assert [h.id for h, _ in read_all(tmp_path / "s.rec")] == [10, 11, 12]


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    Image.new("L", (100, 100)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(PackError, match="big.png: cannot decode image"):
        pack_lst(
            [LstEntry(0, (0.0,), "big.png")],
            tmp_path,
            tmp_path / "b.rec",
            tmp_path / "b.idx",
            options=PackOptions(resize=8),
        )


def test_exif_rotated_photos_are_packed_upright(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, displayed rotated by 90 degrees: portrait
    Image.new("RGB", (80, 40), (200, 10, 10)).save(tmp_path / "p.jpg", exif=exif)
    pack_lst(
        [LstEntry(0, (0.0,), "p.jpg")],
        tmp_path,
        tmp_path / "r.rec",
        tmp_path / "r.idx",
        options=PackOptions(resize=20),
    )
    assert Image.open(io.BytesIO(read_all(tmp_path / "r.rec")[0][1])).size == (20, 40)
