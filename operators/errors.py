"""A user's bad input fails the task once, with its message, and is not retried."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

from airflow.sdk.exceptions import AirflowFailException

from tasks.errors import InputError

F = TypeVar("F", bound=Callable)


def user_errors(execute: F) -> F:
    """Decorate `execute`: an InputError fails the task with its message, without retries."""

    @functools.wraps(execute)
    def wrapper(*args, **kwargs):
        try:
            return execute(*args, **kwargs)
        except InputError as e:
            raise AirflowFailException(str(e)) from e

    return wrapper  # type: ignore[return-value]
