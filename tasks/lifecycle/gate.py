"""The champion/challenger gate: a pure decision from two evaluations on the same data.

Rules, all of which must hold to promote: the challenger's primary metric reaches the absolute
floor; it is not a backfill behind the champion (a run whose data interval ends before the
champion's never replaces it; a run on the latest data competes whatever its run type); it
beats the champion's, re-scored on the same data, by at least `min_improvement`; no class
present in both loses more than `max_class_drop` of its per-class metric; and, when
`no_promotion_on_drift` is on, no drift expectation of the data-quality step failed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class GateRules:
    min_improvement: float = 0.0
    """How much better the primary metric must be (0: not worse)."""
    max_class_drop: float = 0.05
    """Largest drop of one class's metric that is tolerated."""
    floor: float | None = None
    """The primary metric any model must reach, the first one included (None: no floor)."""
    no_promotion_on_drift: bool = False
    """Keep the champion when the run's data drifted from the champion's (a failed drift
    expectation of the data-quality step)."""


@dataclass(frozen=True)
class Decision:
    promote: bool
    reasons: list[str]
    metric: str
    challenger: float
    champion: float | None
    per_class_metric: str
    per_class: dict[str, dict[str, float | None]] = field(default_factory=dict)
    """Class name -> {"challenger": value, "champion": value or None}."""
    rules: dict[str, float | None] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _better(a: float, b: float, higher_is_better: bool) -> float:
    """How much `a` improves on `b` (negative: worse)."""
    return a - b if higher_is_better else b - a


def _per_class(evaluation: Mapping | None, metric: str) -> dict[str, float]:
    if not evaluation:
        return {}
    return {
        name: float(values[metric])
        for name, values in (evaluation.get("per_class") or {}).items()
        if isinstance(values, Mapping) and values.get(metric) is not None
    }


def decide(
    challenger: Mapping[str, Any],
    champion: Mapping[str, Any] | None,
    *,
    metric: str,
    higher_is_better: bool,
    per_class_metric: str,
    rules: GateRules,
    challenger_data_end: str | None = None,
    champion_data_end: str | None = None,
    drift: list[str] | None = None,
) -> Decision:
    """Promote the challenger or not, with a sentence per rule that decided it. `champion` is
    the champion's evaluation on the challenger's data (None: there is no champion, or it could
    not be scored there; then only the floor applies). `drift`: the failed drift expectations
    of the run's data, as sentences. `challenger_data_end`, `champion_data_end`: the ends of the
    data intervals the two were trained on (ISO 8601; None: unknown, the rule does not apply)."""
    value = float(challenger[metric])
    reasons: list[str] = []
    promote = True
    verb = "at least" if higher_is_better else "at most"
    if rules.floor is not None and _better(value, rules.floor, higher_is_better) < 0:
        promote = False
        reasons.append(f"{metric} {value:.4f} misses the floor: {verb} {rules.floor:.4f}")
    elif rules.floor is not None:
        reasons.append(f"{metric} {value:.4f} reaches the floor ({verb} {rules.floor:.4f})")
    mine, theirs = _per_class(challenger, per_class_metric), _per_class(champion, per_class_metric)
    per_class = {
        name: {"challenger": mine.get(name), "champion": theirs.get(name)}
        for name in dict.fromkeys([*mine, *theirs])
    }
    champion_value = None
    if champion is None:
        reasons.append("no champion to compare with: the floor decides")
    else:
        champion_value = float(champion[metric])
        if (
            challenger_data_end
            and champion_data_end
            and datetime.fromisoformat(challenger_data_end)
            < datetime.fromisoformat(champion_data_end)
        ):
            promote = False
            reasons.append(
                f"a backfill: its data interval ends at {challenger_data_end}, before the "
                f"champion's ({champion_data_end}); a model of older data does not replace it"
            )
        gain = _better(value, champion_value, higher_is_better)
        if gain < rules.min_improvement:
            promote = False
            reasons.append(
                f"{metric} {value:.4f} vs the champion's {champion_value:.4f} on the same data: "
                f"a gain of {gain:+.4f}, at least {rules.min_improvement:+.4f} is required"
            )
        else:
            reasons.append(
                f"{metric} {value:.4f} vs the champion's {champion_value:.4f} on the same data: "
                f"a gain of {gain:+.4f} (at least {rules.min_improvement:+.4f} required)"
            )
        drops = {
            name: -_better(mine[name], theirs[name], higher_is_better)
            for name in mine
            if name in theirs
        }
        worst = [(d, n) for n, d in drops.items() if d > rules.max_class_drop]
        for drop, name in sorted(worst, reverse=True):
            promote = False
            reasons.append(
                f"class {name!r}: {per_class_metric} drops by {drop:.4f} "
                f"({theirs[name]:.4f} -> {mine[name]:.4f}); at most {rules.max_class_drop:.4f}"
            )
    if drift and rules.no_promotion_on_drift:
        promote = False
        reasons += [f"data drift (no promotion on data drift): {line}" for line in drift]
    elif drift:
        reasons += [f"data drift, not a rule here: {line}" for line in drift]
    return Decision(
        promote=promote,
        reasons=reasons,
        metric=metric,
        challenger=value,
        champion=champion_value,
        per_class_metric=per_class_metric,
        per_class=per_class,
        rules=asdict(rules),
    )
