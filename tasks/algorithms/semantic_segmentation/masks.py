"""From logits at the working size to masks at the input size, in bounded memory, and mask PNGs.

Bilinear upsampling here is TensorFlow's (half-pixel centres), done a strip of rows at a time:
a 4000x3000 image with 254 classes never holds more than STRIP_BYTES of logits at full size.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from tasks.atomic import atomic_path

STRIP_BYTES = 64 * 2**20


def _taps(size_in: int, size_out: int, start: int, stop: int):
    """Source indices (two) and weights of output positions start..stop-1 (half-pixel)."""
    position = (np.arange(start, stop) + 0.5) * (size_in / size_out) - 0.5
    position = np.clip(position, 0, size_in - 1)
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, size_in - 1)
    return low, high, (position - low).astype(np.float32)


def strips(logits: np.ndarray, size: tuple[int, int]) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, logits of a strip of rows at the full `size`) from top to bottom."""
    height, width = size
    h_in, w_in, classes = logits.shape
    rows = max(1, STRIP_BYTES // (width * classes * 4))
    left, right, wx = _taps(w_in, width, 0, width)
    wx = wx[None, :, None]
    for start in range(0, height, rows):
        stop = min(start + rows, height)
        top, bottom, wy = _taps(h_in, height, start, stop)
        wy = wy[:, None, None]
        vertical = logits[top] * (1 - wy) + logits[bottom] * wy
        yield start, vertical[:, left] * (1 - wx) + vertical[:, right] * wx


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def upsample(
    logits: np.ndarray, size: tuple[int, int], probabilities: Path | None = None
) -> np.ndarray:
    """The class-index mask (uint8, `size`) of working-size logits; with `probabilities`, also
    a float16 HxWxC `.npy` of per-pixel class probabilities there (written atomically)."""
    mask = np.empty(size, dtype=np.uint8)
    if probabilities is None:
        for start, strip in strips(logits, size):
            mask[start : start + len(strip)] = strip.argmax(axis=-1)
        return mask
    with atomic_path(probabilities) as tmp:
        out = np.lib.format.open_memmap(
            tmp, mode="w+", dtype=np.float16, shape=(*size, logits.shape[-1])
        )
        for start, strip in strips(logits, size):
            mask[start : start + len(strip)] = strip.argmax(axis=-1)
            out[start : start + len(strip)] = softmax(strip)
        out.flush()
        del out
    return mask


def palette(num_colors: int = 256) -> list[int]:
    """The PASCAL VOC colour map (class 0 black, 255 white-ish), as annotation tools use."""
    colors = []
    for i in range(num_colors):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        colors += [r, g, b]
    return colors


VOC_PALETTE = palette()


def save_mask(mask: np.ndarray, path: Path, *, values: np.ndarray | None = None) -> None:
    """A palette PNG of `mask` (class indices, or the encoded values `values[class]`)."""
    image = Image.fromarray(mask if values is None else values[mask].astype(np.uint8), mode="P")
    image.putpalette(VOC_PALETTE)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
