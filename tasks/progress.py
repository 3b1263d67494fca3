"""A progress line with rate and ETA, at most every few seconds (task logs are not TTYs)."""

from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)


class Progress:
    """Call `update(n)` as work completes; a line goes to the log at INFO every `interval`
    seconds (not stderr: that is an ERROR line in an Airflow task log)."""

    def __init__(
        self,
        total: int | None,
        *,
        desc: str,
        unit: str = "items",
        interval: float = 5.0,
    ):
        self.total, self.desc, self.unit, self.interval = total, desc, unit, interval
        self.done = 0
        self._start = self._last = time.monotonic()

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self._start
        return self.done / elapsed if elapsed > 0 else 0.0

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self._print()

    def close(self) -> None:
        self._print(final=True)

    def _print(self, *, final: bool = False) -> None:
        rate = self.rate
        line = f"{self.desc}: {self.done}"
        if self.total:
            line += f"/{self.total} {self.unit} ({100 * self.done / self.total:.0f}%)"
        else:
            line += f" {self.unit}"
        line += f", {rate:.1f} {self.unit}/s"
        if final:
            line += f", done in {time.monotonic() - self._start:.1f} s"
        elif self.total and rate > 0:
            line += f", ETA {(self.total - self.done) / rate:.0f} s"
        log.info(line)
