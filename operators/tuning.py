"""The tuning DAG's own steps (thin: the study and its rounds live in tasks/tuning/): a round
reports the trials that ran and hands out the next ones as the arguments of the mapped train
step; the result writes tuning.json and puts the best trial's model where a training run's is.
And the form's tuning fields, with the check the trigger dialog makes of them."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk import Param
from airflow.sdk.exceptions import AirflowSkipException

from operators.container import step_hyperparameters
from operators.run_record import RunStepOperator, pipeline_step
from tasks.algorithms import AlgorithmSpec, get_algorithm
from tasks.errors import InputError
from tasks.tuning.rounds import finish, report_round, round_arguments, start, stored_study
from tasks.tuning.space import objectives
from tasks.tuning.study import EARLY_STOPPING, STRATEGIES, TuningJob

TUNING = "Tuning"
"""The trigger form's section of the tuning fields."""
TUNING_KEY = "x-vision-pipelines-tuning"
"""Schema key of the search space's Param: the algorithm whose table checks the whole job."""
MAX_TRIALS = 100


def tuning_params(spec: AlgorithmSpec) -> dict[str, Param]:
    """The tuning form's fields: objective, search space, strategy, budget, early stopping,
    warm start."""
    known = objectives(spec)
    return {
        "objective": Param(
            known[0].name,
            type="string",
            enum=[o.name for o in known],
            values_display={
                o.name: f"{o.name} ({'maximize' if o.maximize else 'minimize'})" for o in known
            },
            title="Objective metric",
            description="The validation metric the tuning optimizes (each trial's last epoch).",
        ),
        "search_space": Param(
            dict(spec.tuning_ranges),
            type=["null", "object"],
            title="Search space",
            description='Per hyperparameter: {"type": "continuous"|"integer", "min", "max", '
            '"scale": "linear"|"log"} or {"type": "categorical", "values": [...]}. Default: the '
            "reference's recommended ranges; the other hyperparameters are the form's.",
            **{TUNING_KEY: spec.id},
        ),
        "strategy": Param(
            "bayesian",
            type="string",
            enum=list(STRATEGIES),
            title="Strategy",
            description="random; bayesian (TPE after a random first round); hyperband "
            "(successive halving with early stopping on); grid (categorical values only).",
        ),
        "max_trials": Param(
            6,
            type="integer",
            minimum=1,
            maximum=MAX_TRIALS,
            title="Maximum trials",
            description="Training jobs of this tuning run in all (a warm start's trials do not "
            "count).",
        ),
        "max_parallel_trials": Param(
            2,
            type="integer",
            minimum=1,
            maximum=MAX_TRIALS,
            title="Parallel trials",
            description="Trials that train at the same time (one round of the mapped train "
            "step); at most Maximum trials.",
        ),
        "early_stopping": Param(
            "off",
            type="string",
            enum=list(EARLY_STOPPING),
            values_display={"off": "off: every trial trains all epochs", "auto": "auto"},
            title="Early stopping of poor trials",
            description="auto: a trial trains to rungs of a third of the epochs; one worse than "
            "the median of the others at the same epoch (hyperband: the bracket's best) stops, "
            "the others train on from their own model.",
        ),
        "warm_start_uri": Param(
            None,
            type=["null", "string"],
            title="Warm start from",
            description="An earlier tuning run's tuning/ folder: its finished trials inside this "
            "search space are reused, not trained again. Empty: a cold start.",
        ),
        "tuning_seed": Param(
            None,
            type=["null", "integer"],
            title="Tuning seed",
            description="Seed of the strategy's sampler (the same seed proposes the same "
            "trials). Empty: random.",
        ),
    }


def _number(value: Any) -> int | None:
    return None if value in (None, "", "None") else int(value)


def tuning_job(spec: AlgorithmSpec, values: Mapping[str, Any]) -> TuningJob:
    """The job the form's `values` describe (rendered Params), each refusal naming its field;
    the budget in epochs is the form's epochs (empty: the algorithm's default)."""
    space = values.get("search_space")
    if isinstance(space, str):
        try:
            space = json.loads(space) if space.strip() else None
        except ValueError:
            raise InputError(f"search space: not a JSON object: {space!r}") from None
    epochs = values.get("epochs")
    if epochs in (None, "", "None"):
        epochs = spec.param("epochs").default
    try:
        max_epochs = int(str(epochs))
        counts = {
            k: int(values.get(k, d)) for k, d in (("max_trials", 6), ("max_parallel_trials", 2))
        }
    except ValueError as e:
        raise InputError(f"tuning budget: {e}") from None
    return TuningJob.from_form(
        spec,
        max_epochs=max_epochs,
        objective_name=values.get("objective") or None,
        space=space,
        strategy=values.get("strategy") or "bayesian",
        early_stopping=values.get("early_stopping") or "off",
        seed=_number(values.get("tuning_seed")),
        **counts,
    )


def tuning_refusal(values: Mapping[str, Any], schema: Mapping[str, Any]) -> str | None:
    """Why the trigger form's tuning job cannot run (one sentence naming the field); None when
    it can. `schema` is the search space's Param schema (it names the algorithm)."""
    try:
        tuning_job(get_algorithm(schema[TUNING_KEY]), values)
    except InputError as e:
        return str(e)
    return None


class _TuningStep(RunStepOperator):
    """What both tuning steps take: the job's fields (templated) and the run's tuning folder."""

    uri_fields = ("output_uri",)
    template_fields: Sequence[str] = ("output_uri", "job")

    def __init__(
        self, *, algorithm: str, output_uri: str, job: Mapping[str, Any], **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.algorithm, self.output_uri, self.job = get_algorithm(algorithm).id, output_uri, job

    def _job(self) -> TuningJob:
        return tuning_job(get_algorithm(self.algorithm), self.job)


class TuningRoundOperator(_TuningStep):
    """One round: reports the trials of the rounds before (their summary.json and metrics.json),
    then returns the next trials as the mapped train step's arguments: new trials proposed by
    the strategy, continued ones (early stopping) and any handed out whose task never finished.
    Skipped when every trial has run, and the rounds after it with it.

    :param algorithm: the pipeline's algorithm.
    :param output_uri: the run's tuning folder (study.journal, trials/) (templated).
    :param job: the form's tuning fields and epochs (templated; tuning_job).
    :param channels: the train step's channels (templated).
    :param hyperparameters: the train step's fixed hyperparameters (templated).
    :param extra_hyperparameters: the form's other hyperparameters, a JSON object (templated).
    :param warm_start_uri: an earlier tuning folder, read while the study has no trial yet
        (templated).
    """

    template_fields: Sequence[str] = (
        *_TuningStep.template_fields,
        "channels",
        "hyperparameters",
        "extra_hyperparameters",
        "warm_start_uri",
    )

    def __init__(
        self,
        *,
        channels: Mapping[str, str],
        hyperparameters: Mapping[str, str],
        extra_hyperparameters: str = "{}",
        warm_start_uri: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.channels, self.hyperparameters = channels, hyperparameters
        self.extra_hyperparameters, self.warm_start_uri = extra_hyperparameters, warm_start_uri

    @pipeline_step
    def execute(self, context: Any) -> list[dict[str, Any]]:
        job = self._job()
        with stored_study(self.output_uri, job) as study:
            if added := start(study, str(self.warm_start_uri or "").strip()):
                self.log.info("warm start: %d finished trials of %s", added, self.warm_start_uri)
            for line in report_round(study, self.output_uri):
                self.log.info(line)
            units = [] if study.finished else study.next_round()
        if not units:
            raise AirflowSkipException(f"every trial has run ({job.max_trials} at most)")
        for unit in units:
            what = "continues" if unit.resume else "starts"
            self.log.info(
                "trial %d %s: epochs %d to %d, %s",
                unit.number,
                what,
                unit.done + 1,
                unit.epochs,
                json.dumps(unit.hyperparameters),
            )
        channels = {k: str(v) for k, v in self.channels.items() if str(v).strip()}
        # What every trial shares, as the train step takes it; each trial's own win.
        fixed = step_hyperparameters(self.extra_hyperparameters, self.hyperparameters)
        return round_arguments(units, self.output_uri, channels=channels, hyperparameters=fixed)


class TuningResultOperator(_TuningStep):
    """After the last round: reports it, writes tuning.json (every trial, the best one and its
    hyperparameters as the training form takes them) and the objective's plot, and copies the
    best trial's model and metrics to `train_uri` for the gate, promotion and transform.

    :param train_uri: where a training run's model lies (templated).
    """

    uri_fields = ("output_uri", "train_uri")
    template_fields: Sequence[str] = (*_TuningStep.template_fields, "train_uri")

    def __init__(self, *, train_uri: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.train_uri = train_uri

    @pipeline_step
    def execute(self, context: Any) -> dict[str, Any]:
        with stored_study(self.output_uri, self._job()) as study:
            for line in report_round(study, self.output_uri):
                self.log.info(line)
            result = finish(study, self.output_uri, self.train_uri)
        for row in result["trials"]:
            self.log.info(
                "trial %d: %s, %s %s after %d epochs%s",
                row["number"],
                row["state"],
                result["objective"]["name"],
                row["objective"],
                row["epochs"],
                " (stopped early)" if row["stopped_early"] else "",
            )
        best = result["best"]
        self.log.info(
            "best: trial %d, %s %s; its hyperparameters for the training form: %s",
            best["number"],
            result["objective"]["name"],
            best["objective"],
            json.dumps(result["best_hyperparameters"]),
        )
        return {"best_trial": best["number"], "objective": best["objective"]}
