"""Every registered algorithm: its defaults parse, its smallest network builds, its entry points
exist, and the registry itself needs no TensorFlow."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tasks.algorithms import ALGORITHMS, ROLES, UnknownAlgorithmError, get_algorithm
from tasks.contract import Step
from tasks.errors import InputError

ROOT = Path(__file__).resolve().parents[2]
SPECS = list(ALGORITHMS.values())


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.id)
def test_defaults_parse_and_the_smallest_network_builds(spec, hub_cache):
    required = {p.name for p in spec.hyperparameters if p.required}
    assert required <= set(spec.smallest), "the smallest recipe gives every required value"
    hp = spec.entry_point("parse")(spec.smallest)
    for p in spec.hyperparameters:
        if p.name not in spec.smallest and p.default is not None:
            assert getattr(hp, p.name) == p.parse(p.default), p.name
    model = spec.entry_point("build_model")(hp)
    assert model.count_params() > 0
    assert model.outputs[0].shape[-1] == int(spec.smallest["num_classes"])
    assert set(hp.architecture()) == set(spec.architecture)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.id)
def test_every_entry_point_resolves(spec):
    for role in ROLES:
        assert callable(spec.entry_point(role)), role


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.id)
def test_channels_of_each_step_are_checked(spec):
    for step in Step:
        channels = spec.channels[step]
        spec.check_channels(step, channels.allowed)
        spec.check_channels(step, channels.required)
        for missing in channels.required:
            rest = [c for c in channels.required if c != missing]
            with pytest.raises(InputError, match=f"needs the '{missing}'"):
                spec.check_channels(step, rest)
        with pytest.raises(InputError, match="does not read a channel 'x'"):
            spec.check_channels(step, [*channels.required, "x"])


def test_an_unknown_algorithm_names_the_known_ones():
    with pytest.raises(UnknownAlgorithmError, match="known algorithms: image-classification"):
        get_algorithm("NOPE")


def test_the_registry_imports_no_tensorflow():
    code = (
        "import sys, tasks.algorithms, tasks.job, tasks.train;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('tensorflow', 'keras', 'tf_keras', 'airflow')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("module", ["tasks.job", "tasks.train"])
def test_the_command_line_refuses_an_unknown_algorithm(tmp_path, module):
    args = ["--algorithm", "NOPE", "--ml-root", str(tmp_path / "ml")]
    if module == "tasks.job":
        args = ["evaluate", *args, "--output-uri", f"file://{tmp_path}/out"]
    run = subprocess.run(
        [sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True
    )
    assert run.returncode == 2
    assert "unknown algorithm 'NOPE'; known algorithms: image-classification" in run.stderr
