from __future__ import annotations

import io

from PIL import Image

from tasks.data.recordio_format import RecordIOReader, unpack
from tasks.im2rec import main


def make_images(root):
    for cls, color in (("b", (0, 0, 255)), ("a", (255, 0, 0))):
        (root / cls).mkdir(parents=True)
        for i in range(5):
            Image.new("RGB", (40 + i, 30), color).save(root / cls / f"{i}.jpg")


def test_list_then_pack_with_resize_keeps_list_order(tmp_path, capsys):
    make_images(tmp_path / "img")
    prefix = str(tmp_path / "out" / "set")
    (tmp_path / "out").mkdir()
    assert (
        main(["--list", "--recursive", "--train-ratio", "0.6", prefix, str(tmp_path / "img")]) == 0
    )
    assert capsys.readouterr().out == "a 0\nb 1\n"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["set_train.lst", "set_val.lst"]
    assert main(["--resize", "20", "--num-thread", "2", prefix, str(tmp_path / "img")]) == 0
    listed = [
        int(line.split("\t")[0])
        for line in (tmp_path / "out" / "set_train.lst").read_text().splitlines()
    ]
    with RecordIOReader(tmp_path / "out" / "set_train.rec") as reader:
        records = [unpack(r.payload) for r in reader]
    assert [h.id for h, _ in records] == listed
    assert all(min(Image.open(io.BytesIO(img)).size) == 20 for _, img in records)


def test_pack_without_list_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "img").mkdir()
    assert main([str(tmp_path / "none"), str(tmp_path / "img")]) == 2
    assert "no .lst file with prefix" in capsys.readouterr().err


def test_bad_list_line_is_named(tmp_path, capsys):
    make_images(tmp_path / "img")
    (tmp_path / "x.lst").write_text("0\t0.000000\ta/0.jpg\n1\t0.000000\n")
    assert main([str(tmp_path / "x"), str(tmp_path / "img")]) == 2
    err = capsys.readouterr().err
    assert "x.lst: 1 problem:" in err and "line 2: expected index, label(s) and path" in err
