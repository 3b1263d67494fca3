from __future__ import annotations

import json

import pytest
from PIL import Image

from tasks.data.lst import LstEntry
from tasks.data.pack import PackOptions, pack_lst
from tasks.recordio import main


@pytest.fixture
def packed(tmp_path):
    for i in range(4):
        Image.new("RGB", (20 + i, 16), (i * 60, 0, 0)).save(tmp_path / f"{i}.png")
    entries = [LstEntry(100 + i, (float(i % 2),), f"{i}.png") for i in range(4)]
    rec, idx = tmp_path / "d.rec", tmp_path / "d.idx"
    pack_lst(entries, tmp_path, rec, idx, options=PackOptions(pass_through=True))
    return rec, idx


def offsets(idx):
    return [int(line.split("\t")[1]) for line in idx.read_text().splitlines()]


def test_dump_lists_every_record(packed, capsys):
    rec, idx = packed
    assert main(["dump", str(rec)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["id"] for r in rows] == [100, 101, 102, 103]
    assert [r["offset"] for r in rows] == offsets(idx)
    assert rows[1]["label"] == [1.0] and len(rows[0]["image_sha256"]) == 64


def test_verify_passes_an_intact_file(packed, capsys):
    rec, idx = packed
    assert main(["verify", str(rec), "--idx", str(idx), "--decode"]) == 0
    assert "OK, 4 records" in capsys.readouterr().out


def test_verify_names_the_offset_of_a_truncated_record(packed, capsys):
    rec, idx = packed
    rec.write_bytes(rec.read_bytes()[:-5])
    assert main(["verify", str(rec)]) == 2
    assert f"truncated record at byte offset {offsets(idx)[3]}" in capsys.readouterr().err


def test_verify_names_the_offset_of_a_corrupted_magic(packed, capsys):
    rec, idx = packed
    data = bytearray(rec.read_bytes())
    data[offsets(idx)[2] + 1] ^= 0x55
    rec.write_bytes(bytes(data))
    assert main(["verify", str(rec)]) == 2
    assert "bad magic number 0x" in capsys.readouterr().err


def test_verify_decode_names_an_undecodable_image(packed, capsys):
    rec, idx = packed
    data = bytearray(rec.read_bytes())
    start = offsets(idx)[1] + 8 + 24  # record header, then image header
    data[start : start + 8] = b"garbage!"
    rec.write_bytes(bytes(data))
    assert main(["verify", str(rec)]) == 0
    assert main(["verify", str(rec), "--decode"]) == 2
    assert f"record 101 at byte offset {offsets(idx)[1]}: image does not decode" in (
        capsys.readouterr().err
    )


def test_verify_checks_the_index(packed, capsys):
    rec, idx = packed
    lines = idx.read_text().splitlines()
    idx.write_text("\n".join([lines[0], "101\t12", *lines[2:]]) + "\n")
    assert main(["verify", str(rec), "--idx", str(idx)]) == 2
    assert "line 2: key 101 points to byte offset 12, where no record" in capsys.readouterr().err


def test_index_rebuilds_a_lost_idx(packed, tmp_path):
    rec, idx = packed
    expected = idx.read_text()
    idx.unlink()
    assert main(["index", str(rec)]) == 0
    assert idx.read_text() == expected


def test_missing_file(tmp_path, capsys):
    assert main(["verify", str(tmp_path / "nope.rec")]) == 2
    assert "nope.rec: file not found" in capsys.readouterr().err
