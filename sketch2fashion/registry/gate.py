"""The champion gate of every model kind: a paired bootstrap on the test split, not a noisy mean.

A candidate and the champion are scored on the same test items (per-image SSIM for a colorizer,
per-query reciprocal rank for the catalog encoder, per-sketch correctness for the sketch
classifier: `registry/evidence.py`). For each metric the per-item differences, oriented so that a
positive gain means "the candidate is better", are resampled with replacement `resamples` times;
the middle `confidence` of the resampled mean gains is the interval. Pairing removes the
between-item variance (an easy sketch is easy for both models), which is most of it.

- A **route** promotes when the interval's lower bound of its metric's gain is above its
  `min_gain` and, for each metric it must keep, the lower bound is above minus the loss it may
  take (e.g. "hint colours better by 3 Delta E while SSIM loses at most 0.01").
- A **guard** refuses whatever the routes say when the candidate is significantly worse on its
  metric: the interval's upper bound is below minus `max_loss` (e.g. worse on doodles).

Identical models differ by exactly 0 on every item, so the interval is [0, 0] and no route with
`min_gain >= 0` passes: a rerun of the same code and data cannot promote itself. The resampling
is seeded, so the same scores always give the same decision.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Metric:
    """A per-item score and which way is better."""

    name: str
    higher_is_better: bool
    label: str = ""

    def describe(self) -> str:
        return self.label or self.name


@dataclass(frozen=True)
class Route:
    """A way to champion: `metric` gains more than `min_gain` (interval lower bound) while every
    metric in `keep` loses at most its allowance (interval lower bound above minus it)."""

    name: str
    metric: str
    min_gain: float
    keep: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Guard:
    """Refuses a candidate significantly worse on `metric`: interval upper bound below -max_loss."""

    metric: str
    max_loss: float


@dataclass(frozen=True)
class GateRule:
    """What one model kind is judged on, and how sure the gate must be."""

    kind: str
    metrics: Sequence[Metric]
    routes: Sequence[Route]
    guards: Sequence[Guard] = ()
    confidence: float = 0.9
    resamples: int = 10_000
    seed: int = 0

    def __post_init__(self) -> None:
        names = {m.name for m in self.metrics}
        used = {r.metric for r in self.routes} | {k for r in self.routes for k in r.keep} | {g.metric for g in self.guards}
        if used - names:
            raise ValueError(f"gate {self.kind}: rules name unknown metrics {sorted(used - names)}")
        if not 0.0 < self.confidence < 1.0 or self.resamples < 100:
            raise ValueError(f"gate {self.kind}: need 0 < confidence < 1 and at least 100 resamples")

    def metric(self, name: str) -> Metric:
        return next(m for m in self.metrics if m.name == name)

    def to_dict(self) -> dict[str, Any]:
        return {"confidence": self.confidence, "resamples": self.resamples, "seed": self.seed,
                "metrics": {m.name: ("higher" if m.higher_is_better else "lower") + " is better"
                            for m in self.metrics},
                "routes": [{"name": r.name, "metric": r.metric, "min_gain": r.min_gain, "keep": dict(r.keep)}
                           for r in self.routes],
                "guards": [asdict(g) for g in self.guards]}


@dataclass(frozen=True)
class Evidence:
    """One model's per-item scores on the test split: metric -> values in `ids` order (NaN where
    an item has no value for that metric, e.g. a sketch without colour hints)."""

    ids: tuple[str, ...]
    scores: Mapping[str, np.ndarray]

    def __post_init__(self) -> None:
        for name, values in self.scores.items():
            if np.asarray(values).shape != (len(self.ids),):
                raise ValueError(f"evidence {name}: {np.asarray(values).shape} values for {len(self.ids)} items")

    def means(self) -> dict[str, float | None]:
        out = {}
        for name, values in self.scores.items():
            values = np.asarray(values, np.float64)
            finite = values[np.isfinite(values)]
            out[name] = float(finite.mean()) if finite.size else None
        return out

    def counts(self) -> dict[str, int]:
        return {name: int(np.isfinite(np.asarray(v, np.float64)).sum()) for name, v in self.scores.items()}


@dataclass(frozen=True)
class Interval:
    """Candidate minus champion on one metric, oriented so positive = candidate better."""

    metric: str
    candidate: float
    champion: float
    gain: float
    low: float
    high: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class GateDecision:
    """What the gate decided and on what evidence; `intervals` is empty without a comparison."""

    promoted: bool
    reason: str
    route: str | None = None
    intervals: Mapping[str, Interval] = field(default_factory=dict)
    failed_guards: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"promoted": self.promoted, "reason": self.reason, "route": self.route,
                "intervals": {k: v.to_dict() for k, v in self.intervals.items()},
                "failed_guards": list(self.failed_guards)}


def paired_interval(metric: Metric, candidate: np.ndarray, champion: np.ndarray, *, confidence: float,
                    resamples: int, seed: int) -> Interval:
    """The paired bootstrap percentile interval of the mean gain over items both models scored."""
    candidate, champion = np.asarray(candidate, np.float64), np.asarray(champion, np.float64)
    if candidate.shape != champion.shape:
        raise ValueError(f"{metric.name}: {candidate.shape} candidate vs {champion.shape} champion scores")
    both = np.isfinite(candidate) & np.isfinite(champion)
    if not both.any():
        raise ValueError(f"{metric.name}: no test item was scored for both models")
    sign = 1.0 if metric.higher_is_better else -1.0
    diff = sign * (candidate[both] - champion[both])
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    chunk = max(1, 2_000_000 // diff.size)  # bounded memory whatever the split size
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        means[start:stop] = diff[rng.integers(0, diff.size, size=(stop - start, diff.size))].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return Interval(metric.name, float(candidate[both].mean()), float(champion[both].mean()),
                    float(diff.mean()), float(low), float(high), int(both.sum()))


def judge(rule: GateRule, candidate: Evidence, champion: Evidence) -> GateDecision:
    """Compare two models scored on the same test items; see the module docstring for the rule."""
    if candidate.ids != champion.ids:
        raise ValueError(f"gate {rule.kind}: candidate and champion were scored on different test items "
                         f"({len(candidate.ids)} vs {len(champion.ids)}); score both on the same split")
    intervals: dict[str, Interval] = {}
    for metric in rule.metrics:
        if metric.name in candidate.scores and metric.name in champion.scores:
            try:
                intervals[metric.name] = paired_interval(
                    metric, candidate.scores[metric.name], champion.scores[metric.name],
                    confidence=rule.confidence, resamples=rule.resamples, seed=rule.seed)
            except ValueError:
                continue  # e.g. no test sketch had hints: that metric cannot decide anything
    level = f"{rule.confidence:.0%}"
    failed = tuple(g.metric for g in rule.guards
                   if g.metric in intervals and intervals[g.metric].high < -g.max_loss)
    if failed:
        worst = "; ".join(_describe(intervals[m], rule.metric(m)) for m in failed)
        return GateDecision(False, f"significantly worse on {', '.join(failed)} ({level} interval of the gain "
                                   f"entirely below the allowed loss): {worst}", None, intervals, failed)
    notes = []
    for route in rule.routes:
        main = intervals.get(route.metric)
        if main is None:
            notes.append(f"{route.name}: no {route.metric} on the test split")
            continue
        if not main.low > route.min_gain:
            notes.append(f"{route.name}: {_describe(main, rule.metric(route.metric))}, lower bound not above "
                         f"min_gain {route.min_gain:g}")
            continue
        lost = [k for k, allowed in route.keep.items() if k not in intervals or not intervals[k].low > -allowed]
        if lost:
            notes.append(f"{route.name}: {_describe(main, rule.metric(route.metric))} but "
                         + ", ".join(f"{k} may lose more than {route.keep[k]:g}"
                                     + (f" ({_describe(intervals[k], rule.metric(k))})" if k in intervals else "")
                                     for k in lost))
            continue
        return GateDecision(True, f"{route.name}: {_describe(main, rule.metric(route.metric))}, lower bound above "
                                  f"min_gain {route.min_gain:g} ({level} paired bootstrap, n={main.n})",
                            route.name, intervals)
    return GateDecision(False, "no significant improvement: " + "; ".join(notes), None, intervals)


def _describe(interval: Interval, metric: Metric) -> str:
    return (f"{metric.describe()} {interval.candidate:.4f} vs {interval.champion:.4f}, gain {interval.gain:+.4f} "
            f"[{interval.low:+.4f}, {interval.high:+.4f}]")
