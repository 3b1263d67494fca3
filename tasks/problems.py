"""Every problem of an input at once: one message that names the source and each line."""

from __future__ import annotations

from dataclasses import dataclass

MAX_SHOWN = 20


@dataclass(frozen=True)
class Problem:
    line: int
    """1-based line number; 0 for a problem of the whole file."""
    message: str


def describe(source: str, problems: list[Problem], limit: int = MAX_SHOWN) -> str:
    """`source: N problems:` then one line each (the first `limit`) and how many are not shown."""
    shown = [
        f"  line {p.line}: {p.message}" if p.line else f"  {p.message}" for p in problems[:limit]
    ]
    more = [f"  ... and {len(problems) - limit} more"] if len(problems) > limit else []
    noun = "problem" if len(problems) == 1 else "problems"
    return "\n".join([f"{source}: {len(problems)} {noun}:", *shown, *more])
