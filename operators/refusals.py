"""A run refused for its input: one sentence at ERROR in the task log, no traceback, no retry.

Airflow's task runner logs an AirflowFailException with its whole traceback ("Task failed with
exception"), the person's sentence buried under Python frames. A SystemExit it logs as "Task
exited" with its exit code only, then asks the task's retry policy whether to retry. So a refusal
is a SystemExit with the container contract's bad-input code (2), its sentence logged at ERROR
first, and every task of our DAGs carries `FAIL_REFUSALS_AT_ONCE` as its retry policy.
"""

from __future__ import annotations

import logging

from airflow.sdk.definitions.retry_policy import ExceptionRetryPolicy, RetryAction, RetryRule

from tasks.contract import EXIT_BAD_INPUT

log = logging.getLogger("vision_pipelines")


class RunRefused(SystemExit):
    """A run's input refused in one sentence (its `str`); the task exits with code 2."""

    def __init__(self, sentence: str) -> None:
        super().__init__(EXIT_BAD_INPUT)
        self.sentence = sentence

    def __str__(self) -> str:
        return self.sentence


def refuse(sentence: str) -> RunRefused:
    """The refusal to raise, its sentence logged at ERROR (the task log's only trace of it)."""
    log.error("%s", sentence)
    return RunRefused(sentence)


FAIL_REFUSALS_AT_ONCE = ExceptionRetryPolicy(
    rules=[
        RetryRule(
            exception=RunRefused,
            action=RetryAction.FAIL,
            reason="the run's input was refused; a retry would refuse it again",
        )
    ]
)
