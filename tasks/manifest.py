"""`python -m tasks.manifest validate|convert MANIFEST ...`: check an augmented manifest, or turn
it into `.lst` + `.rec` + `.idx` (images packed as they are)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tasks.contract import run_job
from tasks.data.augmented_manifest import (
    DEFAULT_ATTRIBUTES,
    check_manifest,
    parse_options,
    to_lst_entries,
)
from tasks.data.lst import write_lst
from tasks.data.manifest_validation import validate_manifest
from tasks.data.pack import PackOptions, pack_lst


def convert(manifest: Path, prefix: Path, image_root: Path | None, **options) -> int:
    validate_manifest(manifest, **options)
    options.pop("result_path")
    records = check_manifest(manifest, **parse_options(**options))
    entries = to_lst_entries(records, manifest, image_root)
    write_lst(prefix.with_suffix(".lst"), entries)
    multi_label = len(entries[0].labels) > 1
    result = pack_lst(
        entries,
        image_root or manifest.parent,
        prefix.with_suffix(".rec"),
        prefix.with_suffix(".idx"),
        options=PackOptions(pass_through=True, pack_label=multi_label),
        source=str(manifest),
    )
    print(f"wrote {prefix}.lst, .rec and .idx: {result.records} records", flush=True)
    return result.records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tasks.manifest", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("validate", "convert"):
        cmd = commands.add_parser(name)
        cmd.add_argument("manifest", type=Path)
        if name == "convert":
            cmd.add_argument("prefix", type=Path, help="writes PREFIX.lst, .rec and .idx")
            cmd.add_argument(
                "--image-root",
                type=Path,
                help="root the references resolve under (default: the manifest's "
                "folder; s3:// references as <root>/<bucket>/<key>)",
            )
        cmd.add_argument(
            "--attribute-names",
            type=json.loads,
            default=list(DEFAULT_ATTRIBUTES),
            help='JSON list, e.g. \'["source-ref", "class"]\'',
        )
        cmd.add_argument(
            "--content-type",
            default="application/x-recordio",
            help="with '; label-format=multi-hot|class-id' for multi-label",
        )
        cmd.add_argument("--num-classes", type=int)
        cmd.add_argument("--segmentation", action="store_true")
        cmd.add_argument("--result", type=Path, help="where to save the expectation results")
    args = parser.parse_args(argv)
    options = {
        "attribute_names": args.attribute_names,
        "content_type": args.content_type,
        "num_classes": args.num_classes,
        "segmentation": args.segmentation,
        "result_path": args.result,
    }
    if args.command == "validate":

        def job() -> None:
            records = validate_manifest(args.manifest, **options)
            print(f"{args.manifest}: OK, {records} records")

        return run_job(job, None)
    return run_job(lambda: convert(args.manifest, args.prefix, args.image_root, **options), None)


if __name__ == "__main__":
    sys.exit(main())
