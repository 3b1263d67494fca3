"""Tuning's study and search space without training: objectives and ranges checked against each
algorithm's table (one sentence per refusal), trials proposed in rounds, poor ones stopped at a
rung, a restarted task going on without redoing a trial, a warm start reusing earlier trials.
The trials' "training" is a known function of the hyperparameters, so each outcome is exact."""

from __future__ import annotations

import math

import pytest

from tasks.algorithms import ALGORITHMS, get_algorithm
from tasks.errors import InputError
from tasks.tuning.space import objectives, parse_space
from tasks.tuning.study import Study, TuningJob, objective_values

IC = get_algorithm("image-classification")
SPACE = {
    "learning_rate": {"type": "continuous", "min": 1e-4, "max": 0.5, "scale": "log"},
    "optimizer": {"type": "categorical", "values": ["sgd", "adam"]},
}


def curve(hyperparameters: dict[str, str], epochs: int) -> list[float]:
    """A trial's validation accuracy after each epoch: best at learning rate 0.01 with adam."""
    distance = abs(math.log10(float(hyperparameters["learning_rate"])) + 2)
    ceiling = 0.95 - 0.2 * distance - (0.05 if hyperparameters["optimizer"] == "sgd" else 0)
    return [ceiling * (1 - math.exp(-e / 2)) for e in range(1, epochs + 1)]


def job(**options) -> TuningJob:
    settings = {"max_epochs": 9, "space": SPACE, "seed": 7, **options}
    return TuningJob.from_form(IC, **settings)


def run(study: Study, trained: list[tuple[int, int]] | None = None) -> None:
    """Every round to the end, as the tuning pipeline does; `trained` gets (trial, epochs)."""
    while not study.finished:
        units = study.next_round()
        assert 1 <= len(units) <= study.job.max_parallel_trials
        for unit in units:
            (trained if trained is not None else []).append((unit.number, unit.epochs))
            study.report(unit.number, curve(unit.hyperparameters, unit.epochs))


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_every_algorithm_has_objectives_and_valid_recommended_ranges(algorithm):
    spec = get_algorithm(algorithm)
    space = parse_space(spec, None)
    assert space and all(r.name in {h.name for h in spec.hyperparameters} for r in space.values())
    assert objectives(spec)[0].name == f"validation:{spec.primary_metric}"


def test_segmentation_offers_both_of_the_references_objectives():
    names = [o.name for o in objectives(get_algorithm("semantic-segmentation"))]
    assert names == ["validation:mIoU", "validation:pixel_accuracy"]


@pytest.mark.parametrize(
    ("space", "options", "message"),
    [
        ({"learning_rat": {"type": "continuous", "min": 0.1, "max": 0.2}}, {},
         "search space 'learning_rat': image-classification has no such hyperparameter"),
        ({"learning_rate": {"type": "continuous", "min": 0.3, "max": 0.1}}, {},
         "search space 'learning_rate': min 0.3 is above max 0.1"),
        ({"weight_decay": {"type": "continuous", "min": 0, "max": 0.1, "scale": "log"}}, {},
         "search space 'weight_decay': a log scale needs min > 0"),
        ({"momentum": {"type": "continuous", "min": 0.5, "max": 1.5}}, {},
         "search space 'momentum': max 1.5 is outside the hyperparameter's allowed values"),
        ({"optimizer": {"type": "categorical", "values": ["sgd", "lbfgs"]}}, {},
         "search space 'optimizer': value 'lbfgs' is outside the hyperparameter's allowed"),
        ({"mini_batch_size": {"type": "integer", "min": 8.5, "max": 64}}, {},
         "search space 'mini_batch_size': min 8.5 is not a whole number"),
        ({"epochs": {"type": "integer", "min": 1, "max": 5}}, {},
         "search space 'epochs': set by the data or the tuning budget, not searched"),
        ({"learning_rate": {"type": "uniform", "min": 0.1, "max": 0.2}}, {},
         "search space 'learning_rate': type 'uniform'; allowed: continuous, integer"),
        (SPACE, {"objective_name": "validation:mIoU"},
         "objective 'validation:mIoU': image-classification does not report it; allowed: "
         "validation:accuracy"),
        (SPACE, {"strategy": "grid"},
         "search space 'learning_rate': the grid strategy searches categorical values only"),
        (SPACE, {"max_trials": 2, "max_parallel_trials": 3},
         "max_parallel_trials 3: allowed: 1 to max_trials (2)"),
        (SPACE, {"strategy": "evolution"}, "strategy 'evolution'; allowed: random, bayesian"),
    ],
)  # fmt: skip
def test_a_bad_tuning_job_is_refused_with_one_sentence_naming_the_field(space, options, message):
    with pytest.raises(InputError) as refused:
        TuningJob.from_form(IC, max_epochs=5, space=space, **options)
    assert str(refused.value).startswith(message), str(refused.value)
    assert "\n" not in str(refused.value)


def test_rungs_grow_by_three_to_the_whole_budget():
    assert job(early_stopping="auto").rungs == [1, 3, 9]
    assert job(early_stopping="auto", max_epochs=10).rungs == [1, 3, 10]
    assert job(early_stopping="off").rungs == [9]


@pytest.mark.parametrize("strategy", ["bayesian", "hyperband"])
def test_early_stopping_stops_poor_trials_at_a_rung_and_continues_the_others(tmp_path, strategy):
    trained: list[tuple[int, int]] = []
    study = Study(tmp_path / "study.log", job(strategy=strategy, early_stopping="auto"))
    run(study, trained)
    rows = study.trials()
    assert len(rows) == 6 and {r["state"] for r in rows} <= {"complete", "pruned"}
    stopped = [r for r in rows if r["stopped_early"]]
    assert stopped and all(r["epochs"] < 9 for r in stopped)
    assert any(r["state"] == "complete" and r["epochs"] == 9 for r in rows)
    # a continued trial resumes: it is handed out again with more epochs, never from scratch
    for number in {n for n, _ in trained}:
        budgets = [e for n, e in trained if n == number]
        assert budgets == sorted(set(budgets)), budgets
    best = study.best()
    assert best is not None and best["objective"] == max(
        r["objective"] for r in rows if r["state"] == "complete"
    )


def test_without_early_stopping_every_trial_trains_the_whole_budget(tmp_path):
    trained: list[tuple[int, int]] = []
    study = Study(tmp_path / "study.log", job(strategy="random"))
    run(study, trained)
    assert sorted(trained) == [(n, 9) for n in range(6)]
    assert all(r["state"] == "complete" and not r["stopped_early"] for r in study.trials())


def test_rounds_hold_at_most_max_parallel_trials(tmp_path):
    study = Study(tmp_path / "study.log", job(max_parallel_trials=2))
    first = study.next_round()
    assert [u.number for u in first] == [0, 1] and not any(u.resume for u in first)
    assert all(u.epochs == 9 for u in first)


def test_a_restarted_task_runs_the_unreported_units_again_and_no_finished_trial(tmp_path):
    path = tmp_path / "study.log"
    study = Study(path, job(early_stopping="auto"))
    first = study.next_round()
    study.report(first[0].number, curve(first[0].hyperparameters, first[0].epochs))
    # killed before the second unit reported: a new process, the same file
    again = Study(path, job(early_stopping="auto")).next_round()
    assert first[1] in again
    assert all(u.number != first[0].number or u.resume for u in again)
    restarted = Study(path, job(early_stopping="auto"))
    trained: list[tuple[int, int]] = []
    run(restarted, trained)
    finished = {r["number"] for r in restarted.trials()}
    assert finished == set(range(6))
    assert (first[0].number, first[0].epochs) not in trained  # its first rung is not redone


def test_a_warm_start_reuses_the_earlier_trials_without_running_them(tmp_path):
    earlier = Study(tmp_path / "earlier.log", job(strategy="random", max_trials=3))
    run(earlier)
    best_before = earlier.best()
    study = Study(tmp_path / "study.log", job(max_trials=2))
    assert study.warm_start(tmp_path / "earlier.log") == 3
    trained: list[tuple[int, int]] = []
    run(study, trained)
    rows = study.trials()
    assert len(rows) == 5 and len(trained) == 2  # the 3 earlier trials are not run again
    assert study.best()["objective"] >= best_before["objective"]
    with pytest.raises(InputError, match="holds no tuning study"):
        study.warm_start(tmp_path / "nothing.log")


def test_the_objective_of_every_epoch_comes_from_metrics_json():
    objective = objectives(IC)[0]
    metrics = {"epochs": [{"epoch": 2, "validation_accuracy": 0.6},
                          {"epoch": 1, "validation_accuracy": 0.4}]}  # fmt: skip
    assert objective_values(metrics, objective) == [0.4, 0.6]
    with pytest.raises(InputError, match="no validation_accuracy for every epoch"):
        objective_values({"epochs": [{"epoch": 1, "loss": 1.0}]}, objective)
