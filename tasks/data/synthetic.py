"""Generated, learnable image datasets (drawn shapes) for the demo, tests and benchmarks."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "cross", "square", "triangle")


def _polygon(kind: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    if kind == "square":
        corners = [math.pi / 4 + k * math.pi / 2 for k in range(4)]
    else:  # triangle
        corners = [-math.pi / 2 + k * 2 * math.pi / 3 for k in range(3)]
    return [(cx + r * math.cos(a + angle), cy + r * math.sin(a + angle)) for a in corners]


def draw_shape(kind: str, size: int, rng: np.random.Generator) -> Image.Image:
    """One RGB image of `kind` at a random place, scale, rotation and colour, on a noisy background."""
    background = rng.integers(0, 100, size=3)
    pixels = np.clip(background + rng.normal(0, 12, size=(size, size, 3)), 0, 255).astype(np.uint8)
    img = Image.fromarray(pixels, "RGB")
    draw = ImageDraw.Draw(img)
    fill = tuple(int(v) for v in rng.integers(140, 256, size=3))
    r = size * rng.uniform(0.22, 0.36)
    cx, cy = rng.uniform(r, size - r, size=2)
    angle = rng.uniform(0, 2 * math.pi)
    if kind == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif kind == "cross":
        w = max(2.0, r / 2.5)
        for a in (angle, angle + math.pi / 2):
            dx, dy = math.cos(a), math.sin(a)
            px, py = -dy * w / 2, dx * w / 2
            draw.polygon(
                [
                    (cx - dx * r + px, cy - dy * r + py),
                    (cx + dx * r + px, cy + dy * r + py),
                    (cx + dx * r - px, cy + dy * r - py),
                    (cx - dx * r - px, cy - dy * r - py),
                ],
                fill=fill,
            )
    else:
        draw.polygon(_polygon(kind, cx, cy, r, angle), fill=fill)
    return img


def make_shapes_dataset(
    root: str | Path,
    *,
    per_class: int = 150,
    size: int = 32,
    classes: tuple[str, ...] = SHAPES,
    seed: int = 0,
) -> Path:
    """Write `root/<shape>/<shape>_NNNN.jpg`, a class-folder dataset; return `root`."""
    unknown = set(classes) - set(SHAPES)
    if unknown:
        raise ValueError(f"unknown shape(s) {sorted(unknown)}; choose from {', '.join(SHAPES)}")
    root = Path(root)
    rng = np.random.default_rng(seed)
    for kind in classes:
        folder = root / kind
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            draw_shape(kind, size, rng).save(folder / f"{kind}_{i:04d}.jpg", quality=92)
    return root


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Generate a class-folder dataset of drawn shapes.")
    parser.add_argument("root", type=Path, help="output folder (one subfolder per class)")
    parser.add_argument("--per-class", type=int, default=150)
    parser.add_argument("--size", type=int, default=32, help="image side in pixels")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    make_shapes_dataset(args.root, per_class=args.per_class, size=args.size, seed=args.seed)
    print(f"wrote {args.per_class * len(SHAPES)} images in {len(SHAPES)} classes under {args.root}")


if __name__ == "__main__":
    main()
