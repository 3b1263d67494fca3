"""The data-quality step: Great Expectations validates the run's data profile with the
pipeline's expectation suite, in GE's own environment (`python -m tasks.quality`), so that the
Airflow worker's memory and dependencies stay as they are."""

from __future__ import annotations

import functools
import os
import resource
import subprocess
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from operators.paths import PROJECT_ROOT
from operators.run_record import RunStepOperator, pipeline_step
from operators.storage import local_copy, remove_prefix, upload
from tasks.errors import InputError
from tasks.lifecycle.champion import read_pointer
from tasks.settings import setting, setting_text

GE_PYTHON_ENV = "VISION_PIPELINES_GE_PYTHON"
SUITES_ENV = "VISION_PIPELINES_EXPECTATIONS"
TIMEOUT_ENV = "VISION_PIPELINES_QUALITY_TIMEOUT_S"
MEMORY_ENV = "VISION_PIPELINES_QUALITY_MEMORY_MB"
OUT_OF_MEMORY = (
    "MemoryError",
    "Cannot allocate memory",
    "failed to map segment",
    "std::bad_alloc",
    "out of memory",
)
"""How Python, libc and the loader say that the address-space cap was reached."""


def ge_python() -> str:
    """The interpreter of Great Expectations' environment (`make setup` makes `.venv-ge`)."""
    return setting_text(GE_PYTHON_ENV) or str(PROJECT_ROOT / ".venv-ge" / "bin" / "python")


def suite_path(pipeline: str) -> Path:
    """`<VISION_PIPELINES_EXPECTATIONS or expectations/>/<pipeline>.json`."""
    folder = Path(setting_text(SUITES_ENV) or PROJECT_ROOT / "expectations")
    path = folder / f"{pipeline}.json"
    if not path.is_file():
        raise InputError(
            f"no expectation suite for {pipeline}: {path} does not exist (the folder is "
            f"{SUITES_ENV}, else expectations/ of the project)"
        )
    return path


class DataQualityOperator(RunStepOperator):
    """Validates the run's data profile (the parts the data-prep steps wrote) with the
    pipeline's suite and, for its drift expectations, the champion's profile. Writes GE's
    validation result, its Data Docs page, `quality.json` and the merged `profile.csv.gz`
    under `output_uri`; a failed critical expectation fails the step (before training) with
    one sentence naming the expectation, the column and the observed value.

    :param profile_uris: the profile parts (templated).
    :param models_uri: where champion pointers live (templated).
    :param pipeline: the pipeline (DAG), which names its suite (templated).
    :param output_uri: the step's folder (templated).
    """

    uri_fields = ("models_uri", "output_uri")
    template_fields: Sequence[str] = ("profile_uris", "models_uri", "pipeline", "output_uri")

    def __init__(
        self,
        *,
        profile_uris: Sequence[str],
        models_uri: str,
        pipeline: str,
        output_uri: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.profile_uris, self.models_uri = list(profile_uris), models_uri
        self.pipeline, self.output_uri = pipeline, output_uri

    @pipeline_step
    def execute(self, context: Any) -> dict[str, Any]:
        suite = suite_path(self.pipeline)
        champion = read_pointer(self.models_uri, self.pipeline)["champion"] or {}
        out = self.output_uri.rstrip("/")
        with ExitStack() as stack:
            profiles = [stack.enter_context(local_copy(uri)) for uri in self.profile_uris]
            command = [ge_python(), "-m", "tasks.quality", "--suite", str(suite)]
            if run_id := context.get("run_id"):  # Data Docs names the validation by it
                command += ["--run-name", str(run_id)]
            for path in profiles:
                command += ["--profile", str(path)]
            if champion.get("profile_uri"):
                reference = stack.enter_context(local_copy(champion["profile_uri"]))
                command += ["--champion-profile", str(reference)]
            else:
                self.log.info("no champion profile: the drift expectations are skipped")
            results = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            self.log.info("validating with %s", suite)
            seconds = setting(TIMEOUT_ENV)
            mib = setting(MEMORY_ENV)
            cap = (mib << 20, mib << 20)  # the child's address space, set before GE starts
            try:
                done = subprocess.run(
                    [*command, "--output", str(results)],
                    capture_output=True,
                    text=True,
                    env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
                    check=False,
                    timeout=seconds,
                    preexec_fn=functools.partial(resource.setrlimit, resource.RLIMIT_AS, cap),
                )
            except subprocess.TimeoutExpired:
                raise InputError(
                    f"{suite}: validating the data took more than {seconds} s ({TIMEOUT_ENV}); "
                    "fewer expectations or simpler regular expressions"
                ) from None
            if done.returncode != 0 and any(w in done.stderr for w in OUT_OF_MEMORY):
                raise InputError(
                    f"{suite}: validating the data needed more than {mib} MiB ({MEMORY_ENV}); "
                    "fewer expectations or a smaller profile"
                )
            for line in done.stdout.splitlines():
                self.log.info("%s", line)
            # A rerun replaces what an earlier attempt published, kept even when it fails.
            remove_prefix(out)
            for path in sorted(p for p in results.rglob("*") if p.is_file()):
                upload(path, f"{out}/{path.relative_to(results).as_posix()}")
        if done.returncode == 2:  # the data or the suite refused, one sentence last on stderr
            lines = done.stderr.strip().splitlines() or [f"{suite}: the data was refused"]
            raise InputError(lines[-1])
        if done.returncode != 0:
            raise RuntimeError(
                f"python -m tasks.quality exited {done.returncode}: {done.stderr[-2000:]}"
            )
        return {"quality": f"{out}/quality.json", "profile": f"{out}/profile.csv.gz"}
