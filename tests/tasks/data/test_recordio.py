from __future__ import annotations

import struct

import pytest

from tasks.data.recordio_format import (
    MAGIC_BYTES,
    ImageHeader,
    RecordIOError,
    RecordIOReader,
    RecordIOWriter,
    build_index,
    encode_record,
    pack,
    read_index,
    unpack,
)


def write(tmp_path, payloads):
    rec, idx = tmp_path / "a.rec", tmp_path / "a.idx"
    with RecordIOWriter(rec, idx) as writer:
        offsets = [writer.write(p, key=i) for i, p in enumerate(payloads)]
    return rec, idx, offsets


def test_round_trip_keeps_payloads_order_and_offsets(tmp_path):
    payloads = [b"", b"a", b"abcd", b"hello world", bytes(range(256)) * 3]
    rec, idx, offsets = write(tmp_path, payloads)
    with RecordIOReader(rec) as reader:
        records = list(reader)
    assert [r.payload for r in records] == payloads
    assert [r.offset for r in records] == offsets
    assert read_index(idx) == dict(enumerate(offsets))
    # Offsets follow the format: 8-byte header, payload, padding to 4.
    assert offsets[1] == 8 and offsets[2] == 8 + 8 + 4
    assert rec.stat().st_size == sum(8 + len(p) + (-len(p) % 4) for p in payloads)


def test_payload_with_aligned_magic_is_split_and_reassembled(tmp_path):
    payload = b"abcd" + MAGIC_BYTES + b"efgh" + MAGIC_BYTES + b"xy"
    data = encode_record(payload)
    cflags = []
    pos = 0
    while pos < len(data):
        _, lrec = struct.unpack_from("<II", data, pos)
        cflags.append(lrec >> 29)
        length = lrec & ((1 << 29) - 1)
        pos += 8 + length + (-length % 4)
    assert cflags == [1, 2, 3]
    rec, _, _ = write(tmp_path, [payload, b"next"])
    with RecordIOReader(rec) as reader:
        assert [r.payload for r in reader] == [payload, b"next"]


def test_unaligned_magic_is_not_split():
    payload = b"ab" + MAGIC_BYTES + b"cd"
    data = encode_record(payload)
    assert struct.unpack_from("<II", data)[1] >> 29 == 0
    assert len(data) == 8 + 8


def test_image_header_single_and_multi_label():
    single = pack(ImageHeader((3.0,), 7), b"IMG")
    assert struct.unpack_from("<IfQQ", single) == (0, 3.0, 7, 0)
    assert unpack(single) == (ImageHeader((3.0,), 7), b"IMG")
    multi = pack(ImageHeader((1.0, 0.0, 2.5), 9), b"IMG")
    assert struct.unpack_from("<IfQQ", multi) == (3, 0.0, 9, 0)
    assert unpack(multi) == (ImageHeader((1.0, 0.0, 2.5), 9), b"IMG")


def test_truncated_file_names_the_byte_offset(tmp_path):
    rec, _, offsets = write(tmp_path, [b"x" * 40, b"y" * 40, b"z" * 40])
    rec.write_bytes(rec.read_bytes()[:-10])
    with RecordIOReader(rec) as reader, pytest.raises(RecordIOError, match=f"offset {offsets[2]}"):
        list(reader)


def test_bad_magic_names_the_byte_offset(tmp_path):
    rec, _, offsets = write(tmp_path, [b"x" * 40, b"y" * 40])
    data = bytearray(rec.read_bytes())
    data[offsets[1]] ^= 0xFF
    rec.write_bytes(bytes(data))
    with RecordIOReader(rec) as reader, pytest.raises(RecordIOError, match=f"offset {offsets[1]}"):
        list(reader)


def test_short_image_header_is_refused():
    with pytest.raises(RecordIOError, match="shorter than the 24-byte image header"):
        unpack(b"\0" * 10, where="x.rec at byte offset 0")


def test_build_index_matches_written_index(tmp_path):
    payloads = [pack(ImageHeader((float(i % 2),), 100 + i), b"data" * i) for i in range(5)]
    rec, idx, _ = write(tmp_path, payloads)
    with RecordIOReader(rec) as reader:
        rebuilt = build_index(reader)
    assert [off for _, off in rebuilt] == list(read_index(idx).values())
    assert [key for key, _ in rebuilt] == [100 + i for i in range(5)]


def test_malformed_index_line_is_named(tmp_path):
    idx = tmp_path / "bad.idx"
    idx.write_text("0\t0\n1\tnot-a-number\n")
    with pytest.raises(RecordIOError, match="line 2"):
        read_index(idx)


def test_a_non_text_idx_is_one_sentence(tmp_path):
    """Hardening item 8: a non-UTF-8 .idx raised UnicodeDecodeError (retried as internal)."""
    from tasks.data.recordio_format import RecordIOError, read_index

    idx = tmp_path / "train.idx"
    idx.write_bytes(b"0\t0\n\xff\xfe\t12\n")
    with pytest.raises(RecordIOError, match=r"train.idx, line 2: not text"):
        read_index(idx)


def test_a_negative_idx_offset_and_a_huge_one_are_sentences(tmp_path):
    """Hardening, third pass: a negative offset ended in an internal error (retried)."""
    idx = tmp_path / "a.idx"
    idx.write_text("0\t-24\n")
    with pytest.raises(RecordIOError, match=r"a.idx, line 1: byte offset -24 is negative"):
        read_index(idx)
    idx.write_text("0\t" + "9" * 5001 + "\n")
    with pytest.raises(RecordIOError, match="line 1: expected"):
        read_index(idx)


def test_a_record_over_the_cap_is_refused_before_it_is_read(tmp_path, monkeypatch):
    """Hardening, third pass: a 1 GiB record was read whole into memory."""
    rec, _, offsets = write(tmp_path, [b"x" * 100, b"y" * 5000])
    monkeypatch.setenv("VISION_PIPELINES_MAX_RECORD_BYTES", "1000")
    with RecordIOReader(rec) as reader:
        assert reader.read_at(offsets[0]).payload == b"x" * 100
        with pytest.raises(RecordIOError, match=f"record at byte offset {offsets[1]} is over 1000"):
            reader.read_at(offsets[1])
