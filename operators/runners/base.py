"""What every runner shares: the step it runs and the interface a runner implements.

A runner turns one container step (`python -m tasks.job STEP ...` with the container contract's
ml-root) into an Airflow operator and runs it: a local process, a pod, ... Each runner is one
public module of this package defining `RUNNER` (helpers are private `_` modules), or an entry
point of the group `vision_pipelines.runners` in another distribution; the `runner` Param names
it. Serving the champion is the deployers' business (operators/deployers).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException

from tasks.algorithms import Environment

STEP_ENVIRONMENT = {"PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
"""Every step's environment, local or pod: unbuffered output, TensorFlow's C++ INFO/WARNING
logs off."""


@dataclass(frozen=True)
class ContainerStep:
    """One container-contract step: what runs, on which channels, and where its outputs go."""

    step: str
    algorithm: str
    channels: Mapping[str, str]
    output_uri: str
    hyperparameters: Mapping[str, str] = field(default_factory=dict)
    input_data_config: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """Channel -> settings (inputdataconfig.json): `TrainingInputMode` Pipe streams it."""
    checkpoint_uri: str = ""
    """Where the step's checkpoints are kept between jobs ("": in the step only)."""

    def arguments(self, ml_root: str) -> list[str]:
        """Arguments of `python -m tasks.job`."""
        args = [self.step, "--algorithm", self.algorithm, "--ml-root", ml_root]
        for name, uri in self.channels.items():
            args += ["--channel", f"{name}={uri}"]
        if self.hyperparameters:
            args += ["--hyperparameters", json.dumps(dict(self.hyperparameters), sort_keys=True)]
        if self.input_data_config:
            config = {k: dict(v) for k, v in self.input_data_config.items()}
            args += ["--input-data-config", json.dumps(config, sort_keys=True)]
        if self.checkpoint_uri:
            args += ["--checkpoint-uri", self.checkpoint_uri]
        return [*args, "--output-uri", self.output_uri]


@dataclass(frozen=True)
class StepRequest:
    """Everything a runner needs to build the work of one step."""

    task_id: str
    step: ContainerStep
    environment: Environment
    image: str | None = None
    """Container image (runners that run images); None: the environment's default."""
    gpus: int = 1
    """GPUs per machine."""
    instance_count: int = 1
    """Machines that train together (the train step; runners that can run several)."""
    local_ml_root: str | None = None
    """The run-scoped ml-root on this machine (runners that run here)."""
    deferrable: bool = False


class StepRunner(ABC):
    """One place a step runs. `build` makes the operator; `start` runs it to completion or
    defers (raises TaskDeferred); `resume` finishes it after the trigger fired, on an operator
    built afresh (it may defer again). The step
    operator reads the outcome from the step's `summary.json` whatever the runner."""

    name: ClassVar[str]
    description: ClassVar[str]
    """One sentence for the form: where the steps run."""
    several_machines: ClassVar[bool] = False
    """Whether it can train on several machines (StepRequest.instance_count > 1)."""

    @abstractmethod
    def build(self, request: StepRequest) -> BaseOperator: ...

    def start(self, operator: BaseOperator, context: Any) -> None:
        operator.execute(context)

    def resume(
        self,
        operator: BaseOperator,
        context: Any,
        event: dict[str, Any],
        method: str,
        kwargs: Mapping[str, Any],
    ) -> None:
        """Finish a deferred step: `operator` is built afresh from the same request; `method`
        and `kwargs` are what its deferral named (a runner that never defers never gets here)."""
        resume = getattr(operator, method, None)
        if not callable(resume):
            raise AirflowException(f"the {self.name} runner's operator cannot resume in {method!r}")
        resume(context, event, **kwargs)
