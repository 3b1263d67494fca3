from __future__ import annotations

from datetime import datetime, timezone

import jinja2

from operators.paths import run_key, run_uri


def test_scheduled_and_backfilled_runs_use_their_logical_date():
    date = datetime(2026, 3, 4, 5, 6, 7, tzinfo=timezone.utc)
    assert run_key(date, "scheduled__x") == run_key(date, "backfill__y") == "20260304T050607"
    assert run_uri("s3://b/out/", date, "r") == "s3://b/out/run=20260304T050607"


def test_runs_without_a_logical_date_use_their_run_id():
    run_id = "manual__2026-11-22T16:50:33.748744+00:00"
    assert run_key(None, run_id) == "manual__2026-11-22T16_50_33.748744_00_00"
    assert run_key(jinja2.Undefined(), run_id) == run_key(None, run_id)
