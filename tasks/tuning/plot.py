"""The objective of every trial over its epochs as a PNG, drawn with Pillow (the Airflow side
has no matplotlib): one line per trial, stopped trials in grey, the best in bold."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

WIDTH, HEIGHT, MARGIN = 720, 420, 60
COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"]


def objective_plot(result: Mapping[str, Any], path: Path) -> None:
    """tuning.json's trials drawn: epoch on x, the objective on y."""
    curves = [(row, row["objective_per_epoch"]) for row in result["trials"]]
    values = [v for _, c in curves for v in c]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    if high - low < 1e-9:
        low, high = low - 0.5, high + 0.5
    epochs = max([len(c) for _, c in curves] + [2])
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = MARGIN, 30, WIDTH - 140, HEIGHT - MARGIN

    def point(epoch: int, value: float) -> tuple[float, float]:
        x = left + (right - left) * (epoch - 1) / (epochs - 1)
        return x, bottom - (bottom - top) * (value - low) / (high - low)

    draw.rectangle((left, top, right, bottom), outline="black")
    for k in range(5):
        value = low + (high - low) * k / 4
        y = point(1, value)[1]
        draw.line((left - 4, y, left, y), fill="black")
        draw.text((4, y - 6), f"{value:.3g}", fill="black")
    for epoch in range(1, epochs + 1):
        x = point(epoch, low)[0]
        draw.line((x, bottom, x, bottom + 4), fill="black")
        draw.text((x - 3, bottom + 8), str(epoch), fill="black")
    draw.text((left, 8), f"{result['objective']['name']} of every trial", fill="black")
    draw.text(((left + right) // 2 - 15, bottom + 26), "epoch", fill="black")
    best = (result.get("best") or {}).get("number")
    for i, (row, curve) in enumerate(curves):
        colour = "#999999" if row["stopped_early"] else COLOURS[i % len(COLOURS)]
        points = [point(e, v) for e, v in enumerate(curve, start=1)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=4 if row["number"] == best else 2)
        for x, y in points:
            draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=colour)
        label = f"trial {row['number']}" + (" (best)" if row["number"] == best else "")
        label += " stopped" if row["stopped_early"] else ""
        draw.text((right + 10, top + 14 * i), label, fill=colour)
    image.save(path, format="PNG")
