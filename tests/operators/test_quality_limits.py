"""The data-quality step runs under a time and a memory limit (hardening, third pass: a
catastrophic regex ran for more than 120 s, 30,000 expectations took 5 minutes and 1.6 GB)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from operators.quality import MEMORY_ENV, SUITES_ENV, TIMEOUT_ENV, DataQualityOperator
from operators.refusals import RunRefused

ROOT = Path(__file__).resolve().parents[2]
PROFILE = "split,label,source_ref,width,height,mode,bytes\n" + "train,0,a.jpg,16,16,RGB,10\n" * 2


@pytest.fixture
def step(tmp_path, monkeypatch):
    suites = tmp_path / "suites"
    suites.mkdir()
    shutil.copy(ROOT / "expectations" / "image_classification.json", suites)
    monkeypatch.setenv(SUITES_ENV, str(suites))
    (tmp_path / "profile.csv").write_text(PROFILE)
    return DataQualityOperator(
        task_id="data_quality",
        profile_uris=[f"file://{tmp_path}/profile.csv"],
        models_uri=f"file://{tmp_path}/models",
        pipeline="image_classification",
        output_uri=f"file://{tmp_path}/out",
    )


@pytest.mark.parametrize(
    ("setting", "value", "words"),
    [(TIMEOUT_ENV, "1", "took more than 1 s"), (MEMORY_ENV, "200", "needed more than 200 MiB")],
)
def test_a_validation_over_its_limit_is_refused_with_a_sentence(
    step, monkeypatch, setting, value, words
):
    monkeypatch.setenv(setting, value)
    with pytest.raises(RunRefused, match=words) as refused:
        step.execute({})
    assert setting in str(refused.value)


def test_within_the_limits_the_suite_runs(step, tmp_path):
    assert step.execute({})["quality"].endswith("quality.json")
    assert (tmp_path / "out" / "quality.json").is_file()
