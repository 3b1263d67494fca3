"""A deployment's whole-number settings (environment variables), read one way everywhere: a bad
value is one sentence naming the variable, never a traceback."""

from __future__ import annotations

import os

from tasks.errors import InputError


def setting(name: str, default: int, *, minimum: int = 1) -> int:
    """The whole number in `$name` (at least `minimum`), else `default` when it is unset."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit() or int(text) < minimum:
        raise InputError(f"setting {name}={text!r}: allowed: a whole number >= {minimum}")
    return int(text)
