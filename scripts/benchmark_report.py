"""Shared by the benchmark scripts: run a timed snippet in an environment, write a table section."""

from __future__ import annotations

import argparse
import datetime
import functools
import os
import statistics
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "docs" / "benchmarks.md"
AIRFLOW_PYTHON = ROOT / ".venv" / "bin" / "python"
TRAINER_PYTHON = ROOT / ".venv-trainer" / "bin" / "python"
MXNET_PYTHON = ROOT / ".venv-mxnet" / "bin" / "python"
GE_PYTHON = ROOT / ".venv-ge" / "bin" / "python"
"""The environments a benchmark runs its sides in (the Makefile makes them)."""
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}


def run_rate(python: Path | str, code: str, *args: object) -> float:
    """Run `code` with `python` (argv = args); its last stdout line is the measured rate."""
    # A side that hangs fails the benchmark instead of holding it (a tf.data read hung once).
    done = subprocess.run(
        [str(python), "-c", code, *map(str, args)],
        env=ENV,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=SNIPPET_SECONDS,
    )
    if done.returncode != 0:
        raise RuntimeError(f"benchmark snippet failed:\n{done.stderr[-3000:]}")
    return float(done.stdout.strip().splitlines()[-1])


SNIPPET_SECONDS = 1200
KERAS_TIMED = """
for _ in range(2):
    model.train_on_batch(x, y)
start = time.perf_counter()
for _ in range(steps):
    model.train_on_batch(x, y)
print(batch * steps / (time.perf_counter() - start))
"""
"""The end of a Keras training snippet: 2 warm-up steps, then `steps` timed; images/s."""
GLUON_TIMED = """
for _ in range(2):
    step()
start = time.perf_counter()
for _ in range(steps):
    step()
print(batch * steps / (time.perf_counter() - start))
"""
"""The same for a Gluon snippet's `step()`."""
RUNS = 3
"""Runs per measurement: every row quotes their median and range."""
PINNED = (
    "Pinned the same for both sides: the same thread counts (the flags named), all of the "
    "machine's cores (no affinity set for either), the inputs read once before the first run "
    "(a warm page cache for both), and the two alternating run by run."
)


def warm_page_cache(folder: Path) -> None:
    """Read every file under `folder` once, so that no side pays for the first cold read."""
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as f:
                while f.read(1 << 20):
                    pass


def alternating(measures: Sequence[Callable[[], float]], runs: int = RUNS) -> list[list[float]]:
    """Each measure's values over `runs` rounds; every round runs them all in the same order,
    so that both sides of a ratio see the same warm-up, page cache and machine state."""
    values: list[list[float]] = [[] for _ in measures]
    for _ in range(runs):
        for measure, seen in zip(measures, values, strict=True):
            seen.append(measure())
    return values


def snippet_rates(
    sides: Sequence[tuple[Path | str, str]], *args: object, runs: int = RUNS
) -> list[list[float]]:
    """run_rate of each (python, code) side with the same arguments, alternating."""
    return alternating([functools.partial(run_rate, *side, *args) for side in sides], runs)


def spread(values: Sequence[float], digits: int = 2, unit: str = "") -> str:
    """ "median (min-max) unit" of one side's values."""
    low, mid, high = min(values), statistics.median(values), max(values)
    suffix = f" {unit}" if unit else ""
    return f"{mid:.{digits}f} ({low:.{digits}f}-{high:.{digits}f}){suffix}"


def ratios(
    reference: Sequence[float], ours: Sequence[float], *, lower_is_better: bool
) -> list[float]:
    """Our speed-up over the reference in each round (times: reference/ours; rates: ours/ref)."""
    pairs = zip(reference, ours, strict=True)
    return [r / o if lower_is_better else o / r for r, o in pairs]


def ratio_text(values: Sequence[float]) -> str:
    """ "**median x** (min-max)" of a ratio's per-round values."""
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"**{mid:.2f}x** ({low:.2f}-{high:.2f})"


def pair_row(
    what: str,
    reference: Sequence[float],
    ours: Sequence[float],
    unit: str,
    *,
    lower_is_better: bool = False,
    digits: int = 2,
) -> str:
    """A table row: what, the reference's and our median (range), the speed-up's."""
    speedup = ratio_text(ratios(reference, ours, lower_is_better=lower_is_better))
    row = (
        f"| {what} | {spread(reference, digits, unit)} | {spread(ours, digits, unit)} | {speedup} |"
    )
    print(row, flush=True)
    return row


def timed(command: list, cwd: Path = ROOT) -> tuple[float, int]:
    """(wall seconds, peak RSS in MiB) of one command."""
    with tempfile.NamedTemporaryFile("r") as stats:
        subprocess.run(
            ["/usr/bin/time", "-o", stats.name, "-f", "%e %M", *map(str, command)],
            cwd=cwd,
            env=ENV,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        seconds, kib = stats.read().split()[-2:]
    return float(seconds), int(kib) // 1024


def benchmark_parser(doc: str | None) -> argparse.ArgumentParser:
    """A benchmark's command line: its docstring as the help, and `--output` (the Markdown file
    its table goes into, docs/benchmarks.md)."""
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output", type=Path, default=BENCHMARKS)
    return parser


def write_section(path: Path, title: str, intro: str, header: str, rows: list[str]) -> None:
    """Replace (or add) the `## title` section of a Markdown file with a table, dated today."""
    columns = len(header.strip().strip("|").split("|"))
    section = "\n".join(
        [
            f"## {title}",
            "",
            intro,
            "",
            f"Measured {datetime.date.today().isoformat()}.",
            "",
            header,
            "| " + " | ".join("---" for _ in range(columns)) + " |",
            *rows,
            "",
        ]
    )
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    start = text.find(f"## {title}")
    if start >= 0:
        end = text.find("\n## ", start + 1)
        text = text[:start] + section + ("\n" + text[end + 1 :] if end >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(f"wrote {path}")
