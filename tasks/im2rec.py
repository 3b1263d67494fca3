"""`python -m tasks.im2rec PREFIX ROOT [options]`: a drop-in for MXNet's tools/im2rec.py.

Same positional arguments, flags, defaults and output file names. `--list` writes image lists;
otherwise every `PREFIX*.lst` beside PREFIX is packed into `.rec` + `.idx` next to it. Unlike
im2rec, records keep the list order with --num-thread N, a bad image or list line stops with a
message naming it (or is skipped and reported with --skip-bad), and outputs appear atomically.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
from pathlib import Path

from tasks.atomic import atomic_path
from tasks.contract import run_job
from tasks.data.lst import IMAGE_EXTENSIONS, list_class_folders, split_entries, write_lst
from tasks.data.lst_validation import validate_lst
from tasks.data.pack import PackOptions, pack_lst
from tasks.errors import InputError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tasks.im2rec",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Create an image list or make a record database by reading from an image list",
    )
    p.add_argument("prefix", help="prefix of input/output lst and rec files.")
    p.add_argument("root", help="path to folder containing images.")
    c = p.add_argument_group("Options for creating image lists")
    c.add_argument(
        "--list",
        action="store_true",
        help="create image list(s) by traversing root and write <prefix>.lst; "
        "otherwise read <prefix>*.lst and create <prefix>*.rec",
    )
    c.add_argument(
        "--exts",
        nargs="+",
        default=list(IMAGE_EXTENSIONS),
        help="list of acceptable image extensions.",
    )
    c.add_argument("--chunks", type=int, default=1, help="number of chunks.")
    c.add_argument(
        "--train-ratio", type=float, default=1.0, help="Ratio of images to use for training."
    )
    c.add_argument(
        "--test-ratio", type=float, default=0, help="Ratio of images to use for testing."
    )
    c.add_argument(
        "--recursive",
        action="store_true",
        help="walk subfolders and give each folder its own label; otherwise only "
        "the root's images, with label 0.",
    )
    c.add_argument(
        "--no-shuffle",
        dest="shuffle",
        action="store_false",
        help="keep the listing order in <prefix>.lst",
    )
    c.add_argument("--seed", type=int, default=100, help="shuffling seed (im2rec's is 100).")
    r = p.add_argument_group("Options for creating database")
    r.add_argument(
        "--pass-through",
        action="store_true",
        help="whether to skip transformation and save image as is",
    )
    r.add_argument(
        "--resize",
        type=int,
        default=0,
        help="resize the shorter edge of image to the newsize, original images will "
        "be packed by default.",
    )
    r.add_argument(
        "--center-crop",
        action="store_true",
        help="specify whether to crop the center image to make it rectangular.",
    )
    r.add_argument(
        "--quality",
        type=int,
        default=95,
        help="JPEG quality for encoding, 1-100; or PNG compression for encoding, 1-9",
    )
    r.add_argument(
        "--num-thread",
        type=int,
        default=1,
        help="number of processes to use for encoding; records keep the list order.",
    )
    r.add_argument(
        "--color",
        type=int,
        default=1,
        choices=[-1, 0, 1],
        help="1: colour (3 channels), 0: greyscale, -1: as is (alpha kept)",
    )
    r.add_argument(
        "--encoding",
        type=str,
        default=".jpg",
        choices=[".jpg", ".png"],
        help="specify the encoding of the images.",
    )
    r.add_argument(
        "--pack-label",
        action="store_true",
        help="Whether to also pack multi dimensional label in the record file",
    )
    r.add_argument(
        "--skip-bad",
        action="store_true",
        help="leave out unreadable images (each reported) instead of stopping",
    )
    return p


def make_lists(args: argparse.Namespace) -> list[Path]:
    """im2rec --list: the class map on stdout, one or more .lst files; return their paths."""
    listing = list_class_folders(
        args.root, [e.lower() for e in args.exts], recursive=args.recursive
    )
    if args.recursive:
        for label, name in enumerate(listing.classes):
            print(name, label)
    entries = list(listing.entries)
    if args.shuffle:
        random.Random(args.seed).shuffle(entries)
    chunk_size = (len(entries) + args.chunks - 1) // args.chunks
    written = []
    for i in range(args.chunks):
        chunk = entries[i * chunk_size : (i + 1) * chunk_size]
        stem = args.prefix + (f"_{i}" if args.chunks > 1 else "")
        if args.train_ratio == 1.0:
            outputs = {".lst": chunk}
        else:
            split = split_entries(
                chunk,
                train_ratio=args.train_ratio,
                test_ratio=args.test_ratio,
                shuffle=False,
                size=chunk_size,
            )
            outputs = {"_train.lst": split.train}
            if args.test_ratio:
                outputs["_test.lst"] = split.test
            if args.train_ratio + args.test_ratio < 1.0:
                outputs["_val.lst"] = split.validation
        for suffix, part in outputs.items():
            path = Path(stem + suffix)
            with atomic_path(path) as tmp:
                write_lst(tmp, part)
            written.append(path)
    return written


def pack_lists(args: argparse.Namespace) -> list[Path]:
    """Pack every `<prefix>*.lst` beside the prefix, as im2rec does; return the .rec paths."""
    prefix = Path(args.prefix)
    folder = prefix if prefix.is_dir() else prefix.parent
    lists = sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and str(p).startswith(args.prefix) and p.suffix == ".lst"
    )
    if not lists:
        raise InputError(f"no .lst file with prefix {args.prefix}; create one with --list first")
    options = PackOptions(
        pass_through=args.pass_through,
        resize=args.resize,
        center_crop=args.center_crop,
        quality=args.quality,
        encoding=args.encoding,
        color=args.color,
        pack_label=args.pack_label,
    )
    recs = []
    for lst in lists:
        print(f"Creating .rec file from {lst} in {folder}", flush=True)
        rec = lst.with_suffix(".rec")
        # Every problem of the list at once; missing images are left to --skip-bad when given.
        entries = validate_lst(lst, image_root=None if args.skip_bad else args.root)
        result = pack_lst(
            entries,
            args.root,
            rec,
            lst.with_suffix(".idx"),
            options=options,
            num_workers=args.num_thread,
            skip_bad=args.skip_bad,
            source=str(lst),
        )
        if result.skipped:
            print(f"{rec}: {len(result.skipped)} image(s) skipped", file=sys.stderr)
        recs.append(rec)
    return recs


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    args.prefix = os.path.abspath(args.prefix)
    args.root = os.path.abspath(args.root)
    return run_job(lambda: make_lists(args) if args.list else pack_lists(args), None)


if __name__ == "__main__":
    sys.exit(main())
