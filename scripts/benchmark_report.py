"""Shared by the benchmark scripts: run a timed snippet in an environment, write a table section."""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "docs" / "benchmarks.md"
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}


def run_rate(python: Path | str, code: str, *args: object) -> float:
    """Run `code` with `python` (argv = args); its last stdout line is the measured rate."""
    done = subprocess.run(
        [str(python), "-c", code, *map(str, args)],
        env=ENV,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if done.returncode != 0:
        raise RuntimeError(f"benchmark snippet failed:\n{done.stderr[-3000:]}")
    return float(done.stdout.strip().splitlines()[-1])


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
    """Replace (or add) the `## title` section of a Markdown file with a table."""
    columns = len(header.strip().strip("|").split("|"))
    section = "\n".join(
        [
            f"## {title}",
            "",
            intro,
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
