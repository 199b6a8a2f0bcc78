"""Put a registered version through its kind's gate: score it and the champion on the test split,
judge (registry/gate.py), record the decision on the version, and move the aliases.

The same for every registered model the product serves: `colorizer-<category>`,
`sketch-classifier` and `catalog-encoder`. The version's tags then say what the gate saw:
`promotion` (promoted / rejected), `promotion_reason`, `gate_split`, `gate_n`, `gate_confidence`,
`gate_champion_version`, one `gate_<metric>` JSON interval per metric ({gain, low, high, n}) and
`test_<metric>` (its mean on the test split). The champion's `test_<metric>` tags are refreshed
too: it was measured again on the same items. The returned `GateOutcome` is what the stages write
to reports/promote/.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mlflow.entities.model_registry import ModelVersion
from mlflow.tracking import MlflowClient

from sketch2fashion.registry.aliases import (
    CHAMPION,
    aliased_version,
    move_champion,
    tag_outcome,
)
from sketch2fashion.registry.gate import Evidence, GateDecision, GateRule, judge

PROMOTED = "promoted"
REJECTED = "rejected"
TEST_SPLIT = "test"
Scorer = Callable[[ModelVersion], Evidence]


@dataclass(frozen=True)
class GateOutcome:
    """A gate run, as recorded in the registry and written to reports/promote/<model>.json."""

    model: str
    kind: str
    version: int
    decision: GateDecision
    champion_version: int | None
    """The champion after the call."""
    previous_champion: int | None
    """The champion before the call (what the candidate was compared with)."""
    candidate_test: Mapping[str, float | None]
    champion_test: Mapping[str, float | None] | None
    n_test: int
    rule: GateRule
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def promoted(self) -> bool:
        return self.decision.promoted

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "kind": self.kind, "version": self.version,
                "promoted": self.decision.promoted, "reason": self.decision.reason, "route": self.decision.route,
                "champion_version": self.champion_version, "previous_champion": self.previous_champion,
                "split": TEST_SPLIT, "n_test": self.n_test,
                "test": {"candidate": _rounded(self.candidate_test),
                         "champion": None if self.champion_test is None else _rounded(self.champion_test)},
                "intervals": {k: v.to_dict() for k, v in self.decision.intervals.items()},
                "failed_guards": list(self.decision.failed_guards),
                "gate": self.rule.to_dict(), **dict(self.extra)}


def gate_version(client: MlflowClient, name: str, version: int | str, rule: GateRule, score: Scorer, *,
                 extra: Mapping[str, Any] | None = None) -> GateOutcome:
    """Judge `version` of registered model `name` against its champion and apply the decision.

    Without a champion the candidate is promoted unjudged ("no champion yet"); when it already is
    the champion nothing moves. Otherwise both are scored by `score` on the same test items.
    """
    candidate = client.get_model_version(name, str(version))
    current = aliased_version(client, name, CHAMPION)
    candidate_evidence = score(candidate)
    champion_evidence = None
    if current is None:
        decision = GateDecision(True, "no champion yet")
    elif int(current.version) == int(candidate.version):
        decision = GateDecision(True, "already the champion")
    else:
        champion_evidence = score(current)
        decision = judge(rule, candidate_evidence, champion_evidence)
    _record(client, name, candidate, current, decision, rule, candidate_evidence, champion_evidence)
    if decision.promoted:
        move_champion(client, name, candidate.version)
    after = aliased_version(client, name, CHAMPION)
    return GateOutcome(
        model=name, kind=rule.kind, version=int(candidate.version), decision=decision,
        champion_version=None if after is None else int(after.version),
        previous_champion=None if current is None else int(current.version),
        candidate_test=candidate_evidence.means(),
        champion_test=None if champion_evidence is None else champion_evidence.means(),
        n_test=len(candidate_evidence.ids), rule=rule, extra=dict(extra or {}))


def _record(client: MlflowClient, name: str, candidate: ModelVersion, current: ModelVersion | None,
            decision: GateDecision, rule: GateRule, candidate_evidence: Evidence,
            champion_evidence: Evidence | None) -> None:
    version = candidate.version
    tags = {"gate_split": TEST_SPLIT, "gate_n": str(len(candidate_evidence.ids)),
            "gate_confidence": repr(rule.confidence),
            "gate_champion_version": "" if current is None else str(current.version),
            **{f"gate_{k}": json.dumps(v.to_dict()) for k, v in decision.intervals.items()},
            **_test_tags(candidate_evidence)}
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    if champion_evidence is not None and current is not None:
        for key, value in _test_tags(champion_evidence).items():
            client.set_model_version_tag(name, current.version, key, value)
    tag_outcome(client, name, version, PROMOTED if decision.promoted else REJECTED, decision.reason)


def _test_tags(evidence: Evidence) -> dict[str, str]:
    return {f"test_{k}": repr(round(v, 6)) for k, v in evidence.means().items() if v is not None}


def _rounded(values: Mapping[str, float | None]) -> dict[str, float | None]:
    return {k: None if v is None else round(float(v), 6) for k, v in values.items()}
