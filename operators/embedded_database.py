"""The embedded deployment's SQLite database (`make ui`): a writer waits for the lock instead of
failing. With sqlite3's default of 5 s, the API server's backfill (or trigger) failed with
"database is locked" (a 503 behind the dialog's spinner) while the scheduler and the triggerer
wrote. Named by `[database] sql_alchemy_connect_args` and `..._async`; a Postgres deployment
sets neither."""

CONNECT_ARGS = {"timeout": 60}
"""Seconds a connection waits for another's write lock (sqlite3 and aiosqlite alike)."""
