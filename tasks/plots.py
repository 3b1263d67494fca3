"""PNG reports: learning curves and confusion matrices (matplotlib, no display)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen first
import numpy as np  # noqa: E402


def learning_curves(epochs: Sequence[dict], path: Path, metric: str = "accuracy") -> None:
    """Loss and `metric` per epoch, train and validation, side by side."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    x = [e["epoch"] for e in epochs]
    for ax, name in zip(axes, ("loss", metric), strict=True):
        for split in ("train", "validation"):
            key = f"{split}_{name}"
            if any(key in e for e in epochs):
                ax.plot(x, [e.get(key, np.nan) for e in epochs], marker="o", label=split)
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def confusion_matrix_png(matrix: np.ndarray, class_names: Sequence[str], path: Path) -> None:
    """Counts with true classes as rows and predictions as columns."""
    n = len(class_names)
    fig, ax = plt.subplots(figsize=(2 + 0.6 * n, 1.5 + 0.6 * n))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(n), class_names, rotation=45, ha="right")
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    limit = matrix.max() / 2 if matrix.size else 0
    for i in range(n):
        for j in range(n):
            ax.text(
                j,
                i,
                str(matrix[i, j]),
                ha="center",
                va="center",
                color="white" if matrix[i, j] > limit else "black",
                fontsize=8,
            )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def per_class_comparison(
    values: dict[str, Sequence[float | None]], labels: Sequence[str], metric: str, path: Path
) -> None:
    """Grouped bars per class: one bar per model (`labels`, e.g. champion and challenger)."""
    names = list(values)
    fig, ax = plt.subplots(figsize=(3 + 0.7 * len(names), 4))
    width = 0.8 / len(labels)
    for i, label in enumerate(labels):
        heights = [np.nan if values[n][i] is None else values[n][i] for n in names]
        ax.bar(
            np.arange(len(names)) + (i - (len(labels) - 1) / 2) * width, heights, width, label=label
        )
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_ylabel(metric)
    ax.set_title(f"per-class {metric}")
    ax.grid(axis="y", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def segmentation_overlays(
    rows: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray]], num_classes: int, path: Path
) -> None:
    """One row per (name, image, truth, prediction): the image, then truth and prediction
    over it (255, ignore, left clear)."""
    if not rows:
        return
    fig, axes = plt.subplots(len(rows), 3, figsize=(9, 3 * len(rows)), squeeze=False)
    colors = plt.get_cmap("tab20", max(num_classes, 2))
    for (name, image, truth, predicted), ax in zip(rows, axes, strict=True):
        ax[0].imshow(image)
        ax[0].set_title(name[-40:], fontsize=8)
        for a, mask, title in ((ax[1], truth, "truth"), (ax[2], predicted, "prediction")):
            a.imshow(image)
            shown = np.ma.masked_where(mask >= num_classes, mask)
            a.imshow(shown, cmap=colors, vmin=0, vmax=max(num_classes - 1, 1), alpha=0.55)
            a.set_title(title, fontsize=8)
        for a in ax:
            a.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
