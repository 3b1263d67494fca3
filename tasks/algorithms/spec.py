"""What an algorithm is, as plain data: its channels per step, hyperparameter table, metrics,
environment and entry points. Each algorithm package's `spec.py` defines one `SPEC`."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tasks.contract import Step
from tasks.errors import InputError
from tasks.hyperparameters import Hyperparameter
from tasks.streaming import FILE, PIPE, input_mode


class UnknownAlgorithmError(InputError):
    """An algorithm id that is not in the registry."""


@dataclass(frozen=True)
class Channels:
    """The channels one step reads: those it needs and those it may be given."""

    required: tuple[str, ...]
    optional: tuple[str, ...] = ()

    @property
    def allowed(self) -> tuple[str, ...]:
        return self.required + self.optional


@dataclass(frozen=True)
class Environment:
    """Where an algorithm's container steps run: a local virtual environment or an image."""

    venv: str
    """Folder of the virtual environment in the project (runner=local)."""
    image: str
    """Default container image (runner=kubernetes)."""
    requirements: str
    """The requirement file both are made from."""


TRAINER = Environment(
    venv=".venv-trainer",
    image="vision-pipelines-trainer:latest",
    requirements="docker/trainer/requirements.txt",
)


@dataclass(frozen=True)
class AlgorithmSpec:
    """One algorithm: its code, channels, hyperparameters, primary metric and environment."""

    id: str
    package: str
    """The package under tasks/ that implements it."""
    channels: Mapping[Step, Channels]
    hyperparameters: Sequence[Hyperparameter]
    architecture: tuple[str, ...]
    """Hyperparameters that define the network: they must match for incremental training."""
    primary_metric: str
    """The evaluation metric that ranks models (training reports it as `validation_<name>`)."""
    higher_is_better: bool
    per_class_metric: str
    """The per-class evaluation metric the gate watches (no class may drop much)."""
    environment: Environment
    entry_points: Mapping[str, str]
    """Role -> "module:function" in `package` (or a whole `tasks.` module path, to share
    another algorithm's): train(ml), evaluate(model, input, output, *,
    image_root), predict(model, images, *, total, output) -> rows,
    load_predictor(saved_model_dir), build_model(hp), parse(raw) -> validated hyperparameters;
    optionally responses -> tasks.serving.responses.Responses (the real-time endpoint)."""
    smallest: Mapping[str, str] = field(default_factory=dict)
    """Hyperparameters of the smallest network that trains (tests)."""
    laptop: Mapping[str, str] = field(default_factory=dict)
    """A recipe that trains in minutes on a laptop CPU: the form's defaults where the
    deployment runs steps locally (the table's defaults are the reference's, for GPUs)."""
    evaluation_data: str = "a .rec, a .lst, an augmented manifest or class folders"
    """What a fixed evaluation set may be (the form's [Fixed evaluation set])."""
    streamed_channels: tuple[str, ...] = ()
    """Training channels it can read where they lie, in Pipe input mode (tasks/streaming.py)."""
    metrics: tuple[str, ...] = ()
    """Validation metrics training reports every epoch (`validation_<name>` in metrics.json),
    besides the primary one: what a tuning job may optimize (`validation:<name>`)."""
    tuning_ranges: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """The reference's recommended ranges of the hyperparameters worth tuning: a tuning job's
    default search space (tasks/tuning/space.py reads and checks them)."""

    def __post_init__(self) -> None:
        names = [p.name for p in self.hyperparameters]
        unknown = set(self.architecture) - set(names)
        if unknown:
            raise ValueError(
                f"{self.id}: architecture names {sorted(unknown)} are not in its table"
            )
        missing = set(Step) - set(self.channels)
        if missing:
            raise ValueError(f"{self.id}: no channels for steps {sorted(missing)}")
        missing_roles = set(ROLES) - set(self.entry_points)
        if missing_roles:
            raise ValueError(f"{self.id}: no entry points for {sorted(missing_roles)}")

    def entry_point(self, role: str) -> Callable[..., Any]:
        """The function for `role`, imported only now (most of them pull in TensorFlow)."""
        module, _, name = self.entry_points[role].partition(":")
        if not module.startswith("tasks."):
            module = f"{self.package}.{module}"
        found: Any = importlib.import_module(module)
        for attribute in name.split("."):
            found = getattr(found, attribute)
        return found

    def check_channels(
        self, step: Step | str, names: Iterable[str], *, complete: bool = True
    ) -> None:
        """Refuse a channel the step does not read (first: a misspelt name is also why the
        channel it meant is missing) and, when the set is `complete`, a missing required one."""
        step = Step(step)
        channels, names = self.channels[step], set(names)
        unknown = sorted(names - set(channels.allowed))
        if unknown:
            raise InputError(
                f"step {step.value!r} of {self.id} does not read a channel {unknown[0]!r}; "
                f"allowed: {', '.join(channels.allowed)}"
            )
        for name in channels.required if complete else ():
            if name not in names:
                raise InputError(
                    f"step {step.value!r} of {self.id} needs the {name!r} channel "
                    f"(input/data/{name} under the ml-root; tasks.job: --channel {name}=URI)"
                )

    def check_input_modes(self, step: Step | str, config: Mapping[str, Mapping]) -> None:
        """Refuse Pipe input mode for a channel this algorithm (or step) cannot stream."""
        streamed = self.streamed_channels if Step(step) is Step.TRAIN else ()
        for name, settings in config.items():
            try:
                piped = input_mode(dict(settings)) == PIPE
            except InputError as e:
                raise InputError(f"channel {name!r}: {e}") from None
            if piped and name not in streamed:
                raise InputError(
                    f"channel {name!r}: {self.id} cannot read it in {PIPE} input mode"
                    + (f" (it streams {', '.join(streamed)})" if streamed else "")
                    + f"; use {FILE}"
                )

    def param(self, name: str) -> Hyperparameter:
        for p in self.hyperparameters:
            if p.name == name:
                return p
        raise KeyError(f"{self.id} has no hyperparameter {name!r}")


ROLES = ("train", "evaluate", "predict", "load_predictor", "build_model", "parse")
