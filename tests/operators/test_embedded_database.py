"""Issue 43: with `make ui`'s SQLite, a backfill from the dialog got 503 "database is locked"
while the scheduler wrote. A connection now waits for the writer's lock (operators/
embedded_database.py), as `make ui` and the browser test configure Airflow."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from operators.embedded_database import CONNECT_ARGS

ROOT = Path(__file__).resolve().parents[2]
HELD_SECONDS = 6.0
"""Longer than sqlite3's default wait (5 s), shorter than ours."""


def _held_database(path: Path) -> threading.Timer:
    """`path`'s write lock taken, as a scheduler's write holds it, released after HELD_SECONDS."""
    holder = sqlite3.connect(path, check_same_thread=False)
    holder.execute("CREATE TABLE IF NOT EXISTS runs (id INTEGER)")
    holder.commit()
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(HELD_SECONDS, holder.commit)
    release.start()
    return release


def test_a_writer_waits_for_the_lock_where_sqlites_default_gives_up(tmp_path):
    database = tmp_path / "airflow.db"
    release = _held_database(database)
    try:
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            sqlite3.connect(database).execute("INSERT INTO runs VALUES (1)")
    finally:
        release.join()
    release = _held_database(database)
    started = time.monotonic()
    writer = sqlite3.connect(database, **CONNECT_ARGS)
    writer.execute("INSERT INTO runs VALUES (2)")
    writer.commit()
    release.join()
    assert time.monotonic() - started >= HELD_SECONDS - 1  # it waited, then wrote
    assert writer.execute("SELECT id FROM runs").fetchall() == [(2,)]


def test_make_ui_and_the_browser_test_give_airflow_these_connect_args():
    makefile = (ROOT / "Makefile").read_text()
    conftest = (ROOT / "tests" / "browser" / "conftest.py").read_text()
    for key in ("SQL_ALCHEMY_CONNECT_ARGS", "SQL_ALCHEMY_CONNECT_ARGS_ASYNC"):
        setting = f"AIRFLOW__DATABASE__{key}=operators.embedded_database.CONNECT_ARGS"
        assert setting in makefile.replace(" \\\n\t", " ")
        assert f'"AIRFLOW__DATABASE__{key}"' in conftest
    probe = (
        "from airflow.configuration import conf; "
        "print(conf.getimport('database', 'sql_alchemy_connect_args')['timeout'])"
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS": "operators.embedded_database.CONNECT_ARGS",
    }
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == str(CONNECT_ARGS["timeout"])
