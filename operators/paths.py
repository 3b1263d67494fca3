"""Run-scoped output prefixes: one per data interval; reruns and backfills touch only their own."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

from tasks.settings import setting_text

PROJECT_ROOT = Path(__file__).resolve().parents[1]
"""The checkout (or the image's /opt/vision-pipelines): its environments, suites and data."""


def data_root() -> Path:
    """Where local data lives: `VISION_PIPELINES_DATA_ROOT`, default `./data` in the project."""
    default = PROJECT_ROOT / "data"
    return Path(setting_text("VISION_PIPELINES_DATA_ROOT") or default)


def run_key(logical_date: datetime | None, run_id: str) -> str:
    """`20260101T000000` from the logical date; runs without one (manual, API) use the run id."""
    if logical_date:  # None (or undefined in a template) for runs triggered without one
        return logical_date.strftime("%Y%m%dT%H%M%S")
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", run_id)


def run_uri(output_uri: str, logical_date: datetime | None, run_id: str) -> str:
    """`<output_uri>/run=<key>`: everything one DAG run writes lives under it."""
    return f"{output_uri.rstrip('/')}/run={run_key(logical_date, run_id)}"
