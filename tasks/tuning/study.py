"""A tuning job's study: Optuna's samplers propose the trials (`random`: RandomSampler,
`bayesian`: TPE, `hyperband`: TPE with Hyperband's brackets, `grid`: GridSampler), its pruners
stop poor ones (`early_stopping=auto`: the median rule, or Hyperband's successive halving), and
its journal file keeps every trial, so a task that restarts goes on where the last one stopped.

Trials run in units of epochs (`Unit`): without early stopping one unit is the whole training;
with it, a trial trains to the first rung (a third, a ninth ... of the epochs), reports every
epoch's objective, and only a trial the pruner keeps trains on to the next rung, resuming from
its own checkpoint. A unit handed out and never reported (its task was killed) is handed out
again; a trial that finished is never run again.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tasks.algorithms.spec import AlgorithmSpec
from tasks.errors import InputError
from tasks.tuning.space import Objective, Range, objective, parse_space

STRATEGIES = ("random", "bayesian", "hyperband", "grid")
EARLY_STOPPING = ("off", "auto")
REDUCTION_FACTOR = 3
"""Hyperband's η: each rung keeps about a third of the trials and gives them three times the
epochs (Li et al.; Optuna's and the managed service's default)."""
_EPOCHS, _DONE = "epochs", "epochs_done"
MAX_ROUNDS = 24
"""Rounds of trials a tuning run has (the tuning DAG's tasks, made when it is parsed)."""


@dataclass(frozen=True)
class TuningJob:
    """What a tuning run searches, how, and with which budget."""

    objective: Objective
    space: Mapping[str, Range]
    max_epochs: int
    strategy: str = "bayesian"
    max_trials: int = 6
    max_parallel_trials: int = 2
    early_stopping: str = "off"
    seed: int | None = None

    @classmethod
    def from_form(
        cls,
        spec: AlgorithmSpec,
        *,
        max_epochs: int,
        objective_name: str | None = None,
        space: Any = None,
        **options: Any,
    ) -> TuningJob:
        """The form's values checked: each refusal names its field."""
        job = cls(objective(spec, objective_name), parse_space(spec, space), max_epochs, **options)
        job.check()
        return job

    def check(self) -> None:
        if self.strategy not in STRATEGIES:
            raise InputError(f"strategy {self.strategy!r}; allowed: {', '.join(STRATEGIES)}")
        if self.early_stopping not in EARLY_STOPPING:
            raise InputError(f"early_stopping {self.early_stopping!r}; allowed: off, auto")
        if self.max_trials < 1:
            raise InputError(f"max_trials {self.max_trials}: a tuning job runs at least 1 trial")
        if not 1 <= self.max_parallel_trials <= self.max_trials:
            raise InputError(
                f"max_parallel_trials {self.max_parallel_trials}: allowed: 1 to max_trials "
                f"({self.max_trials})"
            )
        if self.max_epochs < 1:
            raise InputError(f"epochs {self.max_epochs}: a tuning job trains at least 1 epoch")
        if self.strategy == "grid":
            searched = [r.name for r in self.space.values() if r.kind != "categorical"]
            if searched:
                raise InputError(
                    f"search space {searched[0]!r}: the grid strategy searches categorical "
                    "values only (give its values, or choose random or bayesian)"
                )

        if self.rounds > MAX_ROUNDS:
            raise InputError(
                f"max_trials {self.max_trials}: {self.max_parallel_trials} at a time and "
                f"{len(self.rungs)} rung(s) each need up to {self.rounds} rounds of trials, a "
                f"tuning run has {MAX_ROUNDS}: raise max_parallel_trials or lower max_trials"
            )

    @property
    def rounds(self) -> int:
        """At most this many rounds run: every round but the last few is full (a round hands
        out continued trials first, then new ones), and the last trials' rungs follow."""
        units = self.max_trials * len(self.rungs)
        return math.ceil(units / self.max_parallel_trials) + len(self.rungs) - 1

    @property
    def rungs(self) -> list[int]:
        """The epochs after which the pruner decides (the last: the whole budget)."""
        if self.early_stopping == "off":
            return [self.max_epochs]
        found = {
            max(1, round(self.max_epochs / REDUCTION_FACTOR**k))
            for k in range(int(math.log(self.max_epochs, REDUCTION_FACTOR)) + 1)
        }
        return sorted(found | {self.max_epochs})


@dataclass(frozen=True)
class Unit:
    """Train trial `number` with `hyperparameters` from epoch `done` (0: from scratch, else from
    the model it trained so far) until epoch `epochs`."""

    number: int
    hyperparameters: dict[str, str]
    epochs: int
    done: int = 0

    @property
    def resume(self) -> bool:
        return self.done > 0


@dataclass
class Study:
    """The tuning run's Optuna study, in the journal file `path`."""

    path: Path
    job: TuningJob
    _study: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        import optuna
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        storage = JournalStorage(JournalFileBackend(str(self.path)))
        self._study = optuna.create_study(
            study_name="tuning",
            storage=storage,
            load_if_exists=True,
            direction="maximize" if self.job.objective.maximize else "minimize",
            pruner=self._pruner(),
        )
        self._study.sampler = self._sampler()

    def _sampler(self) -> Any:
        """The strategy's sampler. Each round is another task's process: a sampler seeded
        alike in each would draw the same trials again, so the seed moves on by the trials
        proposed so far (a rerun of the same round still draws the same)."""
        from optuna import samplers

        job = self.job
        seed = None if job.seed is None else job.seed + len(self._study.get_trials(deepcopy=False))
        if job.strategy == "random":
            return samplers.RandomSampler(seed=seed)
        if job.strategy == "grid":
            grid = {r.name: list(r.values) for r in job.space.values()}
            return samplers.GridSampler(grid, seed=job.seed)
        # The first round is random (nothing to model yet), then TPE proposes.
        return samplers.TPESampler(seed=seed, n_startup_trials=job.max_parallel_trials)

    def _pruner(self) -> Any:
        from optuna import pruners

        job = self.job
        if job.early_stopping == "off":
            return pruners.NopPruner()
        if job.strategy == "hyperband":
            return pruners.HyperbandPruner(
                min_resource=job.rungs[0],
                max_resource=job.max_epochs,
                reduction_factor=REDUCTION_FACTOR,
            )
        # A trial below the median of the others at the same epoch stops (once one has run).
        return pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0)

    def _distribution(self, r: Range) -> Any:
        from optuna import distributions

        if r.kind == "categorical":
            return distributions.CategoricalDistribution(list(r.values))
        log = r.scale == "log"
        if r.kind == "integer":
            return distributions.IntDistribution(int(r.low), int(r.high), log=log)
        return distributions.FloatDistribution(r.low, r.high, log=log)

    def _running(self) -> list[Any]:
        from optuna.trial import TrialState

        return self._study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))

    def _unit(self, trial: Any) -> Unit:
        params = {name: self.job.space[name].text(value) for name, value in trial.params.items()}
        return Unit(trial.number, params, trial.user_attrs[_EPOCHS], trial.user_attrs.get(_DONE, 0))

    def next_round(self) -> list[Unit]:
        """What to train now: units handed out before and not reported yet (their task was
        killed) and trials kept for their next rung first, then new trials, at most
        max_parallel_trials, and max_trials trials in all."""
        units = self.handed_out()[: self.job.max_parallel_trials]
        started = self._started()
        while len(units) < self.job.max_parallel_trials and started < self.job.max_trials:
            if self.job.strategy == "grid" and self._grid_exhausted():
                break
            trial = self._study.ask(
                {name: self._distribution(r) for name, r in self.job.space.items()}
            )
            trial.set_user_attr(_EPOCHS, self.job.rungs[0])
            trial.set_user_attr(_DONE, 0)
            units.append(self._unit(self._frozen(trial.number)))
            started += 1
        return units

    def _started(self) -> int:
        """Trials of this run (those of a warm start do not count against max_trials)."""
        trials = self._study.get_trials(deepcopy=False)
        return sum(1 for t in trials if "warm_start" not in t.user_attrs)

    def _grid_exhausted(self) -> bool:
        size = math.prod(len(r.values) for r in self.job.space.values())
        return len(self._study.get_trials(deepcopy=False)) >= size

    def _frozen(self, number: int) -> Any:
        return self._study.get_trials(deepcopy=False)[number]

    def reported(self, number: int) -> list[float]:
        """The objective after each epoch trial `number` has reported so far."""
        values = self._frozen(number).intermediate_values
        return [values[epoch] for epoch in sorted(values)]

    def handed_out(self) -> list[Unit]:
        """Units handed out and not reported yet (a round in flight, or one whose task died)."""
        return [self._unit(t) for t in self._running()]

    def report(self, number: int, values: Sequence[float]) -> str:
        """A unit's result, the objective after each epoch so far (1, 2, ...): the trial is
        then `complete`, `pruned` (stopped early), or `continue`s to its next rung."""
        import optuna

        frozen = self._frozen(number)
        if frozen.state != optuna.trial.TrialState.RUNNING:
            return frozen.state.name.lower()  # reported before (a rerun of the same round)
        if len(values) < frozen.user_attrs[_EPOCHS] or not values:
            raise InputError(
                f"trial {number}: {len(values)} epochs reported, "
                f"{frozen.user_attrs[_EPOCHS]} expected"
            )
        # Optuna's own Trial on the stored one: how its integrations report from elsewhere.
        trial = optuna.trial.Trial(self._study, frozen._trial_id)
        for epoch, value in enumerate(values, start=1):
            if epoch not in frozen.intermediate_values:
                trial.report(float(value), epoch)
        trial.set_user_attr(_DONE, len(values))
        epochs = len(values)
        if epochs < self.job.max_epochs and trial.should_prune():
            self._study.tell(number, state=optuna.trial.TrialState.PRUNED)
            return "pruned"
        if epochs >= self.job.max_epochs:
            self._study.tell(number, float(values[-1]))
            return "complete"
        following = [r for r in self.job.rungs if r > epochs]
        trial.set_user_attr(_EPOCHS, following[0])
        return "continue"

    def fail(self, number: int) -> None:
        """The trial's training failed (bad hyperparameters for this data): it ends, the others
        go on."""
        import optuna

        if self._frozen(number).state == optuna.trial.TrialState.RUNNING:
            self._study.tell(number, state=optuna.trial.TrialState.FAIL)

    @property
    def finished(self) -> bool:
        started = self._started()
        exhausted = self.job.strategy == "grid" and self._grid_exhausted()
        return not self._running() and (started >= self.job.max_trials or exhausted)

    def trials(self) -> list[dict[str, Any]]:
        """Every trial: number, hyperparameters, state, objective, epochs trained, stopped
        early or not (tuning.json's and the report's table)."""
        rows = []
        for t in self._study.get_trials(deepcopy=False):
            epochs = t.user_attrs.get(_DONE, 0)
            rows.append(
                {
                    "number": t.number,
                    "hyperparameters": {n: self.job.space[n].text(v) for n, v in t.params.items()},
                    "state": t.state.name.lower(),
                    "objective": t.value
                    if t.value is not None
                    else (t.intermediate_values.get(epochs) if epochs else None),
                    "epochs": epochs,
                    "stopped_early": t.state.name == "PRUNED",
                    "warm_start": "warm_start" in t.user_attrs,
                }
            )
        return rows

    def best(self) -> dict[str, Any] | None:
        """The best trial this run finished (a warm start's trials inform the search; their
        models are the earlier run's), None before one finished."""
        complete = [r for r in self.trials() if r["state"] == "complete" and not r["warm_start"]]
        if not complete:
            return None
        sign = 1 if self.job.objective.maximize else -1
        return max(complete, key=lambda r: sign * r["objective"])

    def warm_start(self, earlier: Path) -> int:
        """Add the finished trials of an earlier tuning run's study whose hyperparameters lie in
        this search space (they are not run again); their count."""
        import optuna
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        if not earlier.is_file():
            raise InputError(f"warm start: {earlier} holds no tuning study")
        storage = JournalStorage(JournalFileBackend(str(earlier)))
        old = optuna.load_study(study_name="tuning", storage=storage)
        space = {n: self._distribution(r) for n, r in self.job.space.items()}
        added = 0
        for t in old.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
            if set(t.params) != set(space) or not all(
                self.job.space[n].holds(v) for n, v in t.params.items()
            ):
                continue
            self._study.add_trial(
                optuna.trial.create_trial(
                    params=t.params,
                    distributions=space,
                    value=t.value,
                    intermediate_values=t.intermediate_values,
                    user_attrs={**t.user_attrs, "warm_start": str(earlier)},
                )
            )
            added += 1
        return added


def objective_values(metrics: Mapping[str, Any], objective: Objective) -> list[float]:
    """The objective after each epoch, from a trial's metrics.json."""
    rows = sorted(metrics.get("epochs", []), key=lambda e: e.get("epoch", 0))
    values = [e.get(objective.key) for e in rows]
    if not values or any(v is None for v in values):
        raise InputError(f"metrics.json reports no {objective.key} for every epoch")
    return [float(v) for v in values]
