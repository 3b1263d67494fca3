"""Run reports: what each pipeline run produced (metrics, evaluation, pictures), as HTML pages."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from tasks.contract import EVALUATION, METRICS
from tasks.errors import InputError

SERVED = (".png", ".json", ".jsonl")


@dataclass(frozen=True)
class RunSummary:
    pipeline: str
    run: str
    folder: Path
    training: dict | None
    evaluation: dict | None
    pictures: list[str]
    """PNG paths relative to the runs root."""


def _json(path: Path) -> dict | None:
    """The JSON object in `path`; None when it is missing or is not one (each run's files are
    judged on their own: one bad file does not break the pages)."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None


def _href(path: str) -> str:
    """A relative link to `path`, every segment URL-encoded (a folder named `javascript:...`
    stays a path, never a scheme), then HTML-escaped."""
    return html.escape("/".join(quote(part, safe="=") for part in path.split("/")))


def find_runs(root: Path) -> list[RunSummary]:
    """Every `<root>/<pipeline>/run=<key>/`, newest first."""
    folders = sorted(root.glob("*/run=*"), key=lambda p: p.stat().st_mtime, reverse=True)
    return [
        RunSummary(
            pipeline=folder.parent.name,
            run=folder.name,
            folder=folder,
            training=_json(folder / "train" / METRICS),
            evaluation=_json(folder / "evaluate" / EVALUATION),
            pictures=sorted(p.relative_to(root).as_posix() for p in folder.rglob("*.png")),
        )
        for folder in folders
        if folder.is_dir()
    ]


def report_file(root: Path, relative: str) -> Path:
    """A file under `root` that reports may show; anything else (or outside) is refused."""
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()) or path.suffix not in SERVED or not path.is_file():
        raise InputError(f"{relative}: not a report file")
    return path


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) else float("nan")


def _headline(run: RunSummary) -> str:
    if run.evaluation is None:
        return "failed or running" if run.training is None else "trained"
    if "mAP" in run.evaluation:
        return f"mAP {_number(run.evaluation['mAP']):.4f}"
    return f"accuracy {_number(run.evaluation.get('accuracy')):.4f}"


def render_index(runs: list[RunSummary]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(r.pipeline)}</td><td><a href='{_href(f'{r.pipeline}/{r.run}')}/'>"
        f"{html.escape(r.run)}</a></td><td>{_headline(r)}</td></tr>"
        for r in runs
    )
    return _page(
        "Training runs",
        f"<table><tr><th>pipeline</th><th>run</th><th>validation</th></tr>{rows}</table>"
        if runs
        else "<p>No runs yet.</p>",
    )


def render_run(run: RunSummary) -> str:
    parts = [f"<p>{_headline(run)}</p>"]
    if run.training:
        final = run.training.get("final")
        final = final if isinstance(final, dict) else {}
        parts.append(
            "<h2>Training (last epoch)</h2><table>"
            + "".join(
                f"<tr><td>{html.escape(k)}</td><td>{v:.4f}</td></tr>"
                for k, v in sorted(final.items())
                if isinstance(v, (int, float))
            )
            + "</table>"
        )
    parts += [f"<h3>{html.escape(p)}</h3><img src='../../files/{_href(p)}'>" for p in run.pictures]
    return _page(f"{run.pipeline} / {run.run}", "".join(parts))


def _page(title: str, body: str) -> str:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
        "</title><style>body{font-family:sans-serif;margin:2em}td,th{padding:.2em 1em;"
        "text-align:left}img{max-width:100%}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
