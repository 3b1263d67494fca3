"""MXNet RecordIO (`.rec` + `.idx`): the byte format of formats.md, read and written natively.

Layout of one record: uint32 magic 0xCED7230A, uint32 lrecord (cflag << 29 | length), the payload,
zero padding to a multiple of 4. A payload holding the magic at a 4-byte aligned position is split
around it (cflag 1 start, 2 middle, 3 end) and the magic is re-inserted on reading, as dmlc-core
does.
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from tasks.errors import InputError
from tasks.settings import setting
from tasks.streaming import local_path, open_input

MAGIC = 0xCED7230A
MAGIC_BYTES = struct.pack("<I", MAGIC)
LENGTH_BITS = 29
MAX_PART_LENGTH = (1 << LENGTH_BITS) - 1
_LREC = struct.Struct("<II")

MAX_RECORD_ENV = "VISION_PIPELINES_MAX_RECORD_BYTES"
"""One record is one encoded image: a bigger one is refused before it is read into memory."""


def max_record_bytes() -> int:
    return setting(MAX_RECORD_ENV)


IMAGE_HEADER = struct.Struct("<IfQQ")
"""flag, label, id, id2: the 24-byte header that starts an image record's payload."""


class RecordIOError(InputError):
    """A `.rec` or `.idx` file that does not follow the format; the message names file and
    offset."""


@dataclass(frozen=True)
class ImageHeader:
    """The image-record header; `label` is a tuple of floats (one for flag 0, N for flag N)."""

    label: tuple[float, ...]
    id: int
    id2: int = 0


def pack(header: ImageHeader, image: bytes) -> bytes:
    """Payload for one image record, as `mx.recordio.pack` makes it."""
    if len(header.label) == 1:
        return IMAGE_HEADER.pack(0, header.label[0], header.id, header.id2) + image
    count = len(header.label)
    labels = struct.pack(f"<{count}f", *header.label)
    return IMAGE_HEADER.pack(count, 0.0, header.id, header.id2) + labels + image


def unpack(payload: bytes, *, where: str = "record") -> tuple[ImageHeader, bytes]:
    """Split an image-record payload into its header and the encoded image bytes."""
    if len(payload) < IMAGE_HEADER.size:
        raise RecordIOError(
            f"{where}: payload of {len(payload)} bytes is shorter than the "
            f"{IMAGE_HEADER.size}-byte image header"
        )
    flag, label, rec_id, id2 = IMAGE_HEADER.unpack_from(payload)
    start = IMAGE_HEADER.size
    if flag == 0:
        return ImageHeader((float(label),), rec_id, id2), payload[start:]
    end = start + 4 * flag
    if end > len(payload):
        raise RecordIOError(
            f"{where}: image header announces {flag} labels ({4 * flag} bytes) but only "
            f"{len(payload) - start} bytes follow the header"
        )
    labels = struct.unpack_from(f"<{flag}f", payload, start)
    return ImageHeader(labels, rec_id, id2), payload[end:]


def _padding(length: int) -> int:
    return (4 - length % 4) % 4


def encode_record(payload: bytes) -> bytes:
    """The bytes of one record, split around aligned magic numbers exactly as dmlc-core writes."""
    if len(payload) > MAX_PART_LENGTH:
        raise RecordIOError(
            f"payload of {len(payload)} bytes is over the RecordIO limit of {MAX_PART_LENGTH} bytes"
        )
    parts: list[bytes] = []
    start = 0
    aligned_end = len(payload) // 4 * 4
    search = 0
    while True:
        hit = payload.find(MAGIC_BYTES, search, aligned_end)
        if hit < 0:
            break
        if hit % 4:
            search = hit + 1
            continue
        cflag = 1 if start == 0 else 2
        parts.append(_LREC.pack(MAGIC, cflag << LENGTH_BITS | (hit - start)) + payload[start:hit])
        start = search = hit + 4
    cflag = 3 if start else 0
    tail = payload[start:]
    parts.append(
        _LREC.pack(MAGIC, cflag << LENGTH_BITS | len(tail)) + tail + b"\0" * _padding(len(payload))
    )
    return b"".join(parts)


class RecordIOWriter:
    """Appends records to a `.rec` and, when given, their `key\\toffset` lines to an `.idx`."""

    def __init__(self, rec_path: str | os.PathLike, idx_path: str | os.PathLike | None = None):
        self.rec_path = Path(rec_path)
        self._rec: BinaryIO = open(self.rec_path, "wb")  # noqa: SIM115 - closed in close()
        self._idx = open(idx_path, "w", encoding="ascii") if idx_path else None  # noqa: SIM115
        self._offset = 0

    def write(self, payload: bytes, key: int | None = None) -> int:
        """Write one record; return the byte offset of its first magic number."""
        data = encode_record(payload)
        offset = self._offset
        self._rec.write(data)
        self._offset += len(data)
        if self._idx is not None:
            if key is None:
                raise ValueError("an index is being written: every record needs a key")
            self._idx.write(f"{key}\t{offset}\n")
        return offset

    def close(self) -> None:
        self._rec.close()
        if self._idx is not None:
            self._idx.close()

    def __enter__(self) -> RecordIOWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class Record:
    """One logical record: the offset of its first magic number, the reassembled payload and the
    offset just after it (its parts and padding)."""

    offset: int
    payload: bytes
    end: int


class RecordIOReader:
    """Reads a `.rec` sequentially or at any offset (random access through `.idx`): a local
    file over an mmap, an object (s3://) in ranged reads with read-ahead (tasks/streaming.py)."""

    def __init__(self, rec_path: str | os.PathLike):
        local = local_path(rec_path if isinstance(rec_path, str) else Path(rec_path))
        self.path: Path | str = local if local is not None else str(rec_path)
        self.max_record = max_record_bytes()
        self._file = open_input(self.path)
        self._map: mmap.mmap | bytes | None = None
        if local is not None:
            self.size = os.fstat(self._file.fileno()).st_size
            self._map = (
                mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ) if self.size else b""
            )
        else:
            self.size = self._file.seek(0, os.SEEK_END)

    def _read(self, pos: int, length: int) -> bytes:
        if self._map is not None:
            return self._map[pos : pos + length]
        self._file.seek(pos)
        return self._file.read(length)

    def read_at(self, offset: int) -> Record:
        """The record whose first magic number is at `offset`; RecordIOError names what is wrong."""
        parts: list[bytes] = []
        pos = offset
        while True:
            if pos + 8 > self.size:
                raise RecordIOError(
                    f"{self.path}: truncated record at byte offset {pos}: "
                    f"{self.size - pos} bytes left, a record header needs 8"
                )
            magic, lrec = _LREC.unpack(self._read(pos, 8))
            if magic != MAGIC:
                raise RecordIOError(
                    f"{self.path}: bad magic number 0x{magic:08X} at byte offset {pos} "
                    f"(expected 0x{MAGIC:08X}); the file is corrupt or not RecordIO"
                )
            cflag, length = lrec >> LENGTH_BITS, lrec & MAX_PART_LENGTH
            if cflag > 3 or (cflag in (0, 1)) != (pos == offset):
                raise RecordIOError(
                    f"{self.path}: record at byte offset {pos} has continuation flag {cflag}, "
                    "which cannot appear " + ("first" if pos == offset else "inside a record")
                )
            end = pos + 8 + length
            if end > self.size:
                raise RecordIOError(
                    f"{self.path}: truncated record at byte offset {pos}: header announces "
                    f"{length} payload bytes, only {self.size - pos - 8} left in the file"
                )
            if end - offset > self.max_record:
                raise RecordIOError(
                    f"{self.path}: the record at byte offset {offset} is over "
                    f"{self.max_record} bytes ({MAX_RECORD_ENV}); one record holds one image"
                )
            parts.append(self._read(pos + 8, length))
            pos = end + _padding(length)
            if cflag in (0, 3):
                return Record(offset, b"".join(parts), pos)
            parts.append(MAGIC_BYTES)

    def __iter__(self) -> Iterator[Record]:
        pos = 0
        while pos < self.size:
            record = self.read_at(pos)
            yield record
            pos = record.end

    def close(self) -> None:
        if isinstance(self._map, mmap.mmap):
            self._map.close()
        self._file.close()

    def __enter__(self) -> RecordIOReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_index(idx_path: str | os.PathLike) -> dict[int, int]:
    """Parse an `.idx` (`key\\toffset` per line) into key -> byte offset, in file order."""
    index: dict[int, int] = {}
    with open_input(idx_path) as f:
        for line_no, raw in enumerate(f, start=1):
            try:
                line = raw.decode("ascii")
            except UnicodeDecodeError:
                raise RecordIOError(
                    f"{idx_path}, line {line_no}: not text (byte {raw[:40]!r}...); an .idx holds "
                    "'<integer key>\\t<byte offset>' lines"
                ) from None
            if not line.strip():
                continue
            fields = line.rstrip("\n").split("\t")
            try:
                key, offset = int(fields[0]), int(fields[1])
            except (ValueError, IndexError) as e:
                raise RecordIOError(
                    f"{idx_path}, line {line_no}: expected '<integer key>\\t<byte offset>', "
                    f"got {line.rstrip()!r}"
                ) from e
            if offset < 0:
                raise RecordIOError(
                    f"{idx_path}, line {line_no}: byte offset {offset} is negative; an offset "
                    "counts bytes from the start of the .rec"
                )
            if key in index:
                raise RecordIOError(f"{idx_path}, line {line_no}: key {key} appears twice")
            index[key] = offset
    return index


def build_index(reader: RecordIOReader) -> list[tuple[int, int]]:
    """(record id, offset) for every image record, by scanning the `.rec`."""
    return [
        (unpack(r.payload, where=f"{reader.path} at byte offset {r.offset}")[0].id, r.offset)
        for r in reader
    ]
