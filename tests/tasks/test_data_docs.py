"""Great Expectations' Data Docs page as a deployment without internet shows it (issue 43):
its status icons and tables styled by our offline stylesheet (GE's own custom-styles hook),
and a KL divergence of 0 shown as 0 (GE 1.x printed "None (-infinity, infinity, or NaN)")."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.tasks.test_suite_rules import GE_PYTHON, PROFILE, ROOT

KL = {
    "type": "expect_column_kl_divergence_to_be_less_than",
    "kwargs": {"column": "label", "threshold": 0.1},
    "meta": {"compare_with": "champion"},
    "severity": "warning",
}
NOT_NULL = {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "label"}}


def data_docs(tmp_path: Path, run: str, champion: str) -> str:
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "suite.json").write_text(json.dumps({"name": "s", "expectations": [KL, NOT_NULL]}))
    (tmp_path / "run.csv").write_text(run)
    (tmp_path / "champion.csv").write_text(champion)
    done = subprocess.run(
        [str(GE_PYTHON), "-m", "tasks.quality", "--profile", str(tmp_path / "run.csv"),
         "--suite", str(tmp_path / "suite.json"), "--output", str(tmp_path / "out"),
         "--champion-profile", str(tmp_path / "champion.csv"), "--run-name", "manual__1"],
        cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Overwriting" not in done.stderr
    return (tmp_path / "out" / "data_docs" / "index.html").read_text()


def text(page: str) -> str:
    """The page's words, as a reader sees them."""
    page = re.sub(r"<(script|style).*?</\1>", " ", page, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))


def test_a_kl_divergence_of_zero_reads_zero_and_a_real_one_its_value(tmp_path):
    two_labels = PROFILE + "validation,1,b.jpg,16,16,RGB,10\n"
    same = data_docs(tmp_path / "same", two_labels, two_labels)
    assert "KL Divergence: 0 " in text(same)
    assert "None (-infinity" not in same
    moved = PROFILE + "validation,0,b.jpg,16,16,RGB,10\n"
    other = data_docs(tmp_path / "moved", moved, two_labels)
    quality = json.loads((tmp_path / "moved" / "out" / "quality.json").read_text())
    (kl,) = [r for r in quality["results"] if r["expectation"] == KL["type"]]
    shown = text(other).split("KL Divergence: ")[1].split(" ")[0].lstrip("≈")
    assert float(shown) == pytest.approx(float(kl["observed"])) and float(shown) > 0


def test_the_page_carries_its_own_styles_for_reading_offline(tmp_path):
    page = data_docs(tmp_path, PROFILE, PROFILE)
    css = (ROOT / "tasks/quality/data_docs_styles/data_docs_custom_styles.css").read_text()
    assert css.strip() in page
    assert "fa-check-circle" in page  # the status icon the stylesheet draws
