"""Check a segmentation dataset's layout (formats.md) in one pass, reporting every problem."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, UnidentifiedImageError

from tasks.data.lst import IMAGE_EXTENSIONS
from tasks.errors import InputError
from tasks.problems import Problem, describe

SPLITS = ("train", "validation")
LABEL_MAP_FILES = ("train_label_map.json", "validation_label_map.json")


class LayoutError(InputError):
    """A segmentation dataset that does not follow the layout; every problem is listed."""


def _size_and_mode(path: Path) -> tuple[tuple[int, int], str] | str:
    try:
        with Image.open(path) as img:
            return img.size, img.mode
    except (OSError, UnidentifiedImageError) as e:
        return f"cannot read {path.name}: {e}"


def check_segmentation_layout(root: str | Path) -> dict[str, int]:
    """Pairs per split when the layout is right; otherwise LayoutError with every problem."""
    root = Path(root)
    problems: list[str] = []
    pairs: dict[str, int] = {}
    for split in SPLITS:
        images_dir, ann_dir = root / split, root / f"{split}_annotation"
        missing = [d.name for d in (images_dir, ann_dir) if not d.is_dir()]
        if missing:
            problems += [f"folder {name}/ is missing" for name in missing]
            continue
        images = {
            p.stem: p
            for p in images_dir.iterdir()
            if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
        }
        annotations = {p.stem: p for p in ann_dir.iterdir() if p.is_file()}
        problems += [
            f"{split}/{images[s].name} has no annotation {split}_annotation/{s}.png"
            for s in sorted(images.keys() - annotations.keys())
        ]
        problems += [
            f"{split}_annotation/{annotations[s].name} has no image in {split}/"
            for s in sorted(annotations.keys() - images.keys())
        ]
        for stem in sorted(images.keys() & annotations.keys()):
            ann = annotations[stem]
            if ann.suffix.lower() != ".png":
                problems.append(f"{split}_annotation/{ann.name}: annotations must be PNG")
                continue
            image_info, ann_info = _size_and_mode(images[stem]), _size_and_mode(ann)
            for info in (image_info, ann_info):
                if isinstance(info, str):
                    problems.append(f"{split}: {info}")
            if isinstance(image_info, str) or isinstance(ann_info, str):
                continue
            if ann_info[1] not in ("P", "L"):
                problems.append(
                    f"{split}_annotation/{ann.name}: mode {ann_info[1]}; annotations "
                    "must be single-channel 8-bit PNGs (mode P or L)"
                )
            if ann_info[0] != image_info[0]:
                problems.append(
                    f"{split}_annotation/{ann.name} is {ann_info[0][0]}x"
                    f"{ann_info[0][1]}, its image {images[stem].name} is "
                    f"{image_info[0][0]}x{image_info[0][1]}"
                )
        pairs[split] = len(images.keys() & annotations.keys())
        if not images and not annotations:
            problems.append(f"{split}/ and {split}_annotation/ are empty")
    label_maps = root / "label_map"
    if label_maps.is_dir():
        problems += [
            f"label_map/{p.name}: expected only {' and '.join(LABEL_MAP_FILES)}"
            for p in sorted(label_maps.iterdir())
            if p.name not in LABEL_MAP_FILES
        ]
    if problems:
        raise LayoutError(describe(str(root), [Problem(0, p) for p in problems]))
    return pairs


def main(argv: list[str] | None = None) -> int:
    """`python -m tasks.data.segmentation_layout ROOT`: exit 0 and the pair counts, or exit 2
    and every problem."""
    import argparse

    from tasks.contract import run_job

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("root", type=Path)
    args = parser.parse_args(argv)
    return run_job(
        lambda: print(f"{args.root}: OK, pairs {check_segmentation_layout(args.root)}"), None
    )


if __name__ == "__main__":
    raise SystemExit(main())
