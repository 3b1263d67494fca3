"""runner=local, the embedded mode: the step as a subprocess in the algorithm's virtual
environment on this machine, its output streamed into the task log."""

from __future__ import annotations

import ctypes
import logging
import os
import re
import signal
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException

from operators.connections import aws_step_environment
from operators.paths import PROJECT_ROOT
from operators.refusals import refuse
from operators.runners.base import STEP_ENVIRONMENT, StepRequest, StepRunner
from tasks.algorithms import TRAINER, Environment
from tasks.contract import FAILED_PREFIX
from tasks.settings import setting_text, step_environment
from tasks.signing import step_key_environment

PR_SET_PDEATHSIG = 1  # linux/prctl.h
# TensorFlow's C++ startup chatter (info/warning lines in absl's format, printed before any
# log level applies, and the CUDA probe failing on a machine without a GPU): kept at DEBUG, so
# that a task log starts with the step's own lines.
NATIVE_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\)"
    r"|[IW]\d{4} [\d:.]+\s+\d+ [\w.]+:\d+\]"
    r"|E\d{4} [\d:.]+\s+\d+ cuda_\w+\.cc:\d+\] failed call to cuInit)"
)


def trainer_python(environment: Environment = TRAINER) -> str:
    """The interpreter of an algorithm's environment (`VISION_PIPELINES_TRAINER_PYTHON` wins)."""
    default = PROJECT_ROOT / environment.venv / "bin" / "python"
    return setting_text("VISION_PIPELINES_TRAINER_PYTHON") or str(default)


def _die_with_parent() -> Callable[[], None]:
    """For the child before exec: SIGTERM when the task process dies, even by SIGKILL (its own
    session keeps it from the task's signals otherwise, and a retry would run a second trainer on
    the same ml-root). prctl is looked up here, in the parent: the child only calls it."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    return lambda: prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class LocalStepOperator(BaseOperator):
    """Runs `python -m tasks.job ARGS` in the trainer environment, streaming its output to the log.

    :param arguments: arguments of `tasks.job` (as ContainerStep.arguments makes them).
    :param python: the interpreter of the algorithm's environment; default `trainer_python()`.
    """

    def __init__(self, *, arguments: Sequence[str], python: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.arguments = list(arguments)
        self.python = python or trainer_python()
        self._process: subprocess.Popen | None = None

    def execute(self, context: Any) -> int:
        return self.run()

    def run(self) -> int:
        """Run the command to completion; raise when it fails."""
        if not Path(self.python).exists():
            raise refuse(
                f"the trainer environment's Python {self.python} does not exist; run `make setup` "
                "or set VISION_PIPELINES_TRAINER_PYTHON"
            )
        command = [self.python, "-m", "tasks.job", *self.arguments]
        env = {
            **STEP_ENVIRONMENT,
            **os.environ,
            **step_environment(),
            **step_key_environment(),
            **aws_step_environment(),
            "PYTHONPATH": str(PROJECT_ROOT),
        }
        self.log.info("running: %s", subprocess.list2cmdline(command))
        self._process = subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,
            preexec_fn=_die_with_parent(),
        )
        for line in self._process.stdout or ():
            # The step's one-sentence failure stands out in the log viewer; the rest is progress.
            if line.startswith(FAILED_PREFIX):
                level = logging.ERROR
            else:
                level = logging.DEBUG if NATIVE_NOISE.match(line) else logging.INFO
            self.log.log(level, "%s", line.rstrip())
        code = self._process.wait()
        if code != 0:
            raise AirflowException(f"{command[2]} {self.arguments[0]} exited with code {code}")
        return code

    def on_kill(self) -> None:
        if self._process and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGTERM)


class LocalRunner(StepRunner):
    name = "local"
    description = "the trainer environment on this machine"

    def build(self, request: StepRequest) -> BaseOperator:
        if request.local_ml_root is None:
            raise ValueError("the local runner needs local_ml_root")
        return LocalStepOperator(
            task_id=request.task_id,
            arguments=request.step.arguments(request.local_ml_root),
            python=trainer_python(request.environment),
        )

    def start(self, operator: BaseOperator, context: Any) -> None:
        # Called directly: the subprocess needs nothing from the task runner.
        operator.run()


RUNNER = LocalRunner()
