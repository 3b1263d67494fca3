"""Every problem of an input at once: one message that names the source and each line."""

from __future__ import annotations

from dataclasses import dataclass

MAX_SHOWN = 20


@dataclass(frozen=True)
class Problem:
    line: int
    """1-based line number; 0 for a problem of the whole file."""
    message: str


def describe(
    source: str, problems: list[Problem], limit: int = MAX_SHOWN, total: int | None = None
) -> str:
    """`source: N problems:` then one line each (the first `limit`) and how many are not shown;
    `total` when `problems` holds only the first ones of more."""
    total = len(problems) if total is None else total
    shown = [
        f"  line {p.line}: {p.message}" if p.line else f"  {p.message}" for p in problems[:limit]
    ]
    more = [f"  ... and {total - len(shown)} more"] if total > len(shown) else []
    noun = "problem" if total == 1 else "problems"
    return "\n".join([f"{source}: {total} {noun}:", *shown, *more])


class ProblemLog:
    """Problems found in any order, in bounded memory: how many, and the first `limit` by line."""

    def __init__(self, limit: int = MAX_SHOWN) -> None:
        self.limit, self.count = limit, 0
        self._kept: list[Problem] = []

    def add(self, problem: Problem) -> None:
        self.count += 1
        self._kept.append(problem)
        if len(self._kept) > 4 * self.limit:
            self._kept = self.first()

    def add_unshown(self, count: int) -> None:
        """Problems known only by number (a check that reported its first ones)."""
        self.count += count

    def first(self) -> list[Problem]:
        return sorted(self._kept, key=lambda p: p.line)[: self.limit]

    def describe(self, source: str) -> str:
        return describe(source, self.first(), self.limit, total=self.count)
