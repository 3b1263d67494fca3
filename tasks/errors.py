"""The one exception a user's bad input raises in tasks/: its message says what to fix."""

from __future__ import annotations


class InputError(ValueError):
    """Bad input (file, parameter, value): exit code 2 in a container, a failed task in Airflow."""
