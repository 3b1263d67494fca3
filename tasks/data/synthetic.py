"""Generated, learnable image datasets (drawn shapes) for the demo, tests and benchmarks.

Single-label: one shape per image, a class per shape (`circle`), or per shape and style
(`circle_outline`). Multi-label: several shapes per image, in a manifest with multi-hot labels.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "cross", "square", "triangle")
EXTRA_SHAPES = ("star",)
TEN_CLASSES = tuple(f"{s}{style}" for s in (*SHAPES, *EXTRA_SHAPES) for style in ("", "_outline"))


def _corners(kind: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    if kind == "square":
        points = [(r, math.pi / 4 + k * math.pi / 2) for k in range(4)]
    elif kind == "triangle":
        points = [(r, -math.pi / 2 + k * 2 * math.pi / 3) for k in range(3)]
    elif kind == "star":
        points = [
            (r if k % 2 == 0 else r * 0.45, -math.pi / 2 + k * math.pi / 5) for k in range(10)
        ]
    else:  # cross: two bars as one 12-corner outline
        w = max(1.0, r / 2.5) / 2
        base = [
            (w, r),
            (w, w),
            (r, w),
            (r, -w),
            (w, -w),
            (w, -r),
            (-w, -r),
            (-w, -w),
            (-r, -w),
            (-r, w),
            (-w, w),
            (-w, r),
        ]
        points = [(math.hypot(x, y), math.atan2(y, x)) for x, y in base]
    return [(cx + d * math.cos(a + angle), cy + d * math.sin(a + angle)) for d, a in points]


def _draw(
    draw: ImageDraw.ImageDraw,
    kind: str,
    cx: float,
    cy: float,
    r: float,
    angle: float,
    fill: tuple[int, ...],
    outline: bool,
) -> None:
    width = max(1, round(r / 4))
    if kind == "circle":
        box = (cx - r, cy - r, cx + r, cy + r)
        draw.ellipse(box, outline=fill, width=width) if outline else draw.ellipse(box, fill=fill)
        return
    corners = _corners(kind, cx, cy, r, angle)
    if outline:
        draw.line([*corners, corners[0]], fill=fill, width=width, joint="curve")
    else:
        draw.polygon(corners, fill=fill)


def _canvas(size: int, rng: np.random.Generator) -> Image.Image:
    background = rng.integers(0, 100, size=3)
    pixels = np.clip(background + rng.normal(0, 12, size=(size, size, 3)), 0, 255)
    return Image.fromarray(pixels.astype(np.uint8), "RGB")


def draw_shape(kind: str, size: int, rng: np.random.Generator) -> Image.Image:
    """One RGB image of `kind` (optionally `<shape>_outline`) at a random place, scale, rotation
    and colour, on a noisy background."""
    shape, _, style = kind.partition("_")
    img = _canvas(size, rng)
    fill = tuple(int(v) for v in rng.integers(140, 256, size=3))
    r = size * rng.uniform(0.24, 0.38)
    cx, cy = rng.uniform(r, size - r, size=2)
    _draw(
        ImageDraw.Draw(img),
        shape,
        cx,
        cy,
        r,
        rng.uniform(0, 2 * math.pi),
        fill,
        outline=style == "outline",
    )
    return img


def make_shapes_dataset(
    root: str | Path,
    *,
    per_class: int = 150,
    size: int = 32,
    classes: tuple[str, ...] = SHAPES,
    seed: int = 0,
) -> Path:
    """Write `root/<class>/<class>_NNNN.jpg`, a class-folder dataset; return `root`."""
    known = {*SHAPES, *EXTRA_SHAPES}
    unknown = [
        c
        for c in classes
        if c.partition("_")[0] not in known or c.partition("_")[2] not in ("", "outline")
    ]
    if unknown:
        raise ValueError(
            f"unknown class(es) {unknown}; use shapes {', '.join(sorted(known))}, "
            "optionally with '_outline'"
        )
    root = Path(root)
    rng = np.random.default_rng(seed)
    for kind in classes:
        folder = root / kind
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            draw_shape(kind, size, rng).save(folder / f"{kind}_{i:04d}.jpg", quality=92)
    return root


def make_multilabel_dataset(
    root: str | Path,
    *,
    count: int = 400,
    size: int = 48,
    classes: tuple[str, ...] = SHAPES,
    seed: int = 0,
) -> Path:
    """Images holding one to all of `classes` (one shape per quadrant) and `root/labels.manifest`
    with multi-hot labels; return the manifest's path."""
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    cell = size / 2
    lines = []
    for i in range(count):
        present = np.zeros(len(classes), dtype=int)
        while not present.any():
            present = (rng.random(len(classes)) < 0.5).astype(int)
        img = _canvas(size, rng)
        draw = ImageDraw.Draw(img)
        cells = rng.permutation(4)
        for slot, k in zip(cells, np.flatnonzero(present), strict=False):
            r = cell * rng.uniform(0.3, 0.42)
            cx = (slot % 2) * cell + cell / 2 + rng.uniform(-1, 1) * (cell / 2 - r)
            cy = (slot // 2) * cell + cell / 2 + rng.uniform(-1, 1) * (cell / 2 - r)
            fill = tuple(int(v) for v in rng.integers(140, 256, size=3))
            _draw(draw, classes[k], cx, cy, r, rng.uniform(0, 2 * math.pi), fill, outline=False)
        name = f"images/{i:05d}.jpg"
        img.save(root / name, quality=92)
        lines.append(json.dumps({"source-ref": name, "class": json.dumps(present.tolist())}))
    manifest = root / "labels.manifest"
    manifest.write_text("\n".join(lines) + "\n")
    (root / "classes.json").write_text(json.dumps(list(classes)))
    return manifest


def write_reference_manifest(path: Path, lines: int, classes: int = 10) -> None:
    """A single-label manifest of `lines` distinct s3:// references (no images behind them),
    for measuring manifest validation."""
    with open(path, "w") as f:
        for i in range(lines):
            ref = f"s3://datasets/flowers/train/{i % classes}/{i:08d}.jpg"
            f.write(json.dumps({"source-ref": ref, "class": str(i % classes)}) + "\n")


def draw_scene(
    size: tuple[int, int], classes: int, rng: np.random.Generator, *, shapes: int = 3
) -> tuple[Image.Image, np.ndarray]:
    """An RGB scene of `size` (width, height) holding 1..`shapes` filled shapes and its class
    indices: 0 background, k for SHAPES[k - 1], 255 (ignore) on a one-pixel outline of each
    shape, as VOC annotations have it."""
    width, height = size
    img = Image.fromarray(
        np.clip(
            rng.integers(0, 100, size=3) + rng.normal(0, 12, size=(height, width, 3)), 0, 255
        ).astype(np.uint8),
        "RGB",
    )
    mask = Image.new("L", size, 0)
    draw, draw_mask = ImageDraw.Draw(img), ImageDraw.Draw(mask)
    for _ in range(int(rng.integers(1, shapes + 1))):
        cls = int(rng.integers(1, classes))
        r = min(size) * rng.uniform(0.15, 0.3)
        cx, cy = rng.uniform(r, width - r), rng.uniform(r, height - r)
        angle = rng.uniform(0, 2 * math.pi)
        kind = SHAPES[(cls - 1) % len(SHAPES)]
        fill = tuple(int(v) for v in rng.integers(140, 256, size=3))
        _draw(draw, kind, cx, cy, r, angle, fill, outline=False)
        _draw(draw_mask, kind, cx, cy, r, angle, cls, outline=False)
        _draw(draw_mask, kind, cx, cy, r, angle, 255, outline=True)
    return img, np.asarray(mask)


def make_scenes_dataset(
    root: Path,
    *,
    train: int,
    validation: int,
    classes: int = 3,
    size: tuple[int, int] = (64, 48),
    seed: int = 0,
    palette: bool = True,
) -> Path:
    """The four-folder segmentation layout of drawn scenes (draw_scene): JPEG images and PNG
    annotations (palette PNGs, or greyscale); `classes` counts the background. Return `root`."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", train), ("validation", validation)):
        (root / split).mkdir(parents=True, exist_ok=True)
        (root / f"{split}_annotation").mkdir(parents=True, exist_ok=True)
        for i in range(count):
            img, mask = draw_scene(size, classes, rng)
            img.save(root / split / f"{split}_{i:04d}.jpg", quality=95)
            ann = Image.fromarray(mask, "L")
            if palette:
                ann = ann.convert("P")
                ann.putpalette([v for c in range(256) for v in (c * 37 % 256, c * 91 % 256, c)])
            ann.save(root / f"{split}_annotation" / f"{split}_{i:04d}.png")
    return root


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Generate a class-folder dataset of drawn shapes.")
    parser.add_argument("root", type=Path, help="output folder (one subfolder per class)")
    parser.add_argument("--per-class", type=int, default=150)
    parser.add_argument("--size", type=int, default=32, help="image side in pixels")
    parser.add_argument(
        "--ten-classes",
        action="store_true",
        help="five shapes, filled and outlined (default: four filled shapes)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    classes = TEN_CLASSES if args.ten_classes else SHAPES
    make_shapes_dataset(
        args.root, per_class=args.per_class, size=args.size, classes=classes, seed=args.seed
    )
    print(
        f"wrote {args.per_class * len(classes)} images in {len(classes)} classes under {args.root}"
    )


if __name__ == "__main__":
    main()
