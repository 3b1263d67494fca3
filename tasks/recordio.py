"""`python -m tasks.recordio dump|verify|index FILE.rec`: inspect, check and re-index RecordIO.

- dump: one JSON line per record, in file order: offset, id, id2, label, image_bytes, image_sha256.
- verify: exit 0 when intact; otherwise exit 2 and the byte offset of the first bad record (bad
  magic, truncated payload, bad image header, an .idx that does not match, an undecodable image
  with --decode).
- index: rebuild a lost `.idx` by scanning the `.rec`.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from PIL import Image, UnidentifiedImageError

from tasks.contract import atomic_write_text, run_job
from tasks.data.recordio_format import (
    ImageHeader,
    RecordIOError,
    RecordIOReader,
    build_index,
    read_index,
    unpack,
)


def image_records(reader: RecordIOReader) -> Iterator[tuple[int, ImageHeader, bytes]]:
    """(offset, header, image bytes) per record, in file order."""
    for record in reader:
        header, image = unpack(
            record.payload, where=f"{reader.path} at byte offset {record.offset}"
        )
        yield record.offset, header, image


def dump(rec: Path, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    count = 0
    with RecordIOReader(rec) as reader:
        for offset, header, image in image_records(reader):
            row = {
                "offset": offset,
                "id": header.id,
                "id2": header.id2,
                "label": list(header.label),
                "image_bytes": len(image),
                "image_sha256": hashlib.sha256(image).hexdigest(),
            }
            out.write(json.dumps(row) + "\n")
            count += 1
    return count


def verify(rec: Path, idx: Path | None = None, *, decode: bool = False) -> int:
    """Check every record (and the index); raise RecordIOError at the first problem."""
    ids_at: dict[int, int] = {}
    with RecordIOReader(rec) as reader:
        for offset, header, image in image_records(reader):
            ids_at[offset] = header.id
            if decode:
                try:
                    with Image.open(io.BytesIO(image)) as img:
                        img.load()
                except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as e:
                    raise RecordIOError(
                        f"{rec}: record {header.id} at byte offset {offset}: image does not "
                        f"decode ({e})"
                    ) from e
    if idx is not None:
        index = read_index(idx)
        for line_no, (key, offset) in enumerate(index.items(), start=1):
            if offset not in ids_at:
                raise RecordIOError(
                    f"{idx}, line {line_no}: key {key} points to byte offset {offset}, where no "
                    f"record of {rec} starts"
                )
            if ids_at[offset] != key:
                raise RecordIOError(
                    f"{idx}, line {line_no}: key {key} points to byte offset {offset}, where the "
                    f"record has id {ids_at[offset]}"
                )
        if len(index) != len(ids_at):
            raise RecordIOError(
                f"{idx}: indexes {len(index)} records but {rec} holds {len(ids_at)}; rebuild it "
                f"with: python -m tasks.recordio index {rec}"
            )
    print(f"{rec}: OK, {len(ids_at)} records" + (", all images decode" if decode else ""))
    return len(ids_at)


def index(rec: Path, output: Path | None = None) -> Path:
    output = output or rec.with_suffix(".idx")
    with RecordIOReader(rec) as reader:
        entries = build_index(reader)
    atomic_write_text(output, "".join(f"{key}\t{offset}\n" for key, offset in entries))
    print(f"wrote {output}: {len(entries)} records")
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tasks.recordio",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("dump", help="one JSON line per record").add_argument("rec", type=Path)
    check = commands.add_parser("verify", help="check records, index and images")
    check.add_argument("rec", type=Path)
    check.add_argument("--idx", type=Path, help="an .idx to check against the .rec")
    check.add_argument("--decode", action="store_true", help="decode every image")
    rebuild = commands.add_parser("index", help="rebuild the .idx by scanning")
    rebuild.add_argument("rec", type=Path)
    rebuild.add_argument("--output", type=Path, help="default: FILE.idx beside FILE.rec")
    args = parser.parse_args(argv)
    if not args.rec.is_file():
        print(f"{args.rec}: file not found", file=sys.stderr)
        return 2
    if args.command == "dump":
        return run_job(lambda: dump(args.rec), None)
    if args.command == "verify":
        return run_job(lambda: verify(args.rec, args.idx, decode=args.decode), None)
    return run_job(lambda: index(args.rec, args.output), None)


if __name__ == "__main__":
    sys.exit(main())
