"""The one exception a user's bad input raises in tasks/ (its message says what to fix), and the
one a step raises when it is stopped from outside."""

from __future__ import annotations


class InputError(ValueError):
    """Bad input (file, parameter, value): exit code 2 in a container, a failed task in Airflow."""


class StepTerminated(Exception):
    """The step was asked to stop (SIGTERM): a pod deleted or evicted, a task killed. Not the
    step's own failure: what it was doing may run again."""
