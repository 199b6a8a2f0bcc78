"""Quality floors a pipeline run must clear, on its test split: checks a broken model fails.

A pipeline can run every stage and still ship nonsense; `s2f smoke` and tests/test_pipeline.py
check the champions against floors stated here (measured on the tiny profile: see
tests/test_pipeline.py, which also shows each floor refusing a broken model):

- a colorizer's test SSIM, on sketches and on doodles, is at most `COLORIZER_SLACK` below its
  untrained start. The generator is residual over the hints' flat fill, so its untrained start
  already returns that fill, a strong baseline (a model that paints grey or garbage falls
  0.2 or more below it); the tiny profile's few training images do not lift SSIM above it.
- the sketch classifier names test sketches right at least `CLASSIFIER_MARGIN` above chance
  (1 / number of categories);
- the catalog encoder's test MRR is at least `ENCODER_FACTOR` x chance (a random ranking of the
  test photos scores the mean of 1/rank over ranks 1..n);
- the fused catalog search finds the product first at least `SEARCH_FACTOR` x as often as
  chance (1 / products of its category in the catalog).
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

COLORIZER_SLACK = 0.02
CLASSIFIER_MARGIN = 0.15
ENCODER_FACTOR = 1.5
SEARCH_FACTOR = 3.0


def chance_mrr(n: int) -> float:
    """Mean reciprocal rank of a uniformly random ranking of n items."""
    return sum(1.0 / rank for rank in range(1, n + 1)) / n


def colorizer_problems(category: str, trained: Mapping[str, float], untrained: Mapping[str, float]) -> list[str]:
    return [f"colorizer-{category}: test {key} {trained[key]:.4f} is more than {COLORIZER_SLACK} below its "
            f"untrained start's {untrained[key]:.4f}"
            for key in ("ssim", "doodle_ssim") if trained[key] < untrained[key] - COLORIZER_SLACK]


def classifier_problems(accuracy: float, n_categories: int) -> list[str]:
    floor = 1.0 / n_categories + CLASSIFIER_MARGIN
    return [] if accuracy >= floor else [
        f"sketch-classifier: test accuracy {accuracy:.3f} below chance + {CLASSIFIER_MARGIN} = {floor:.3f}"]


def encoder_problems(mrr: float, n_test: int) -> list[str]:
    floor = ENCODER_FACTOR * chance_mrr(n_test)
    return [] if mrr >= floor else [
        f"catalog-encoder: test MRR {mrr:.3f} below {ENCODER_FACTOR} x chance = {floor:.3f} ({n_test} test photos)"]


def search_problems(acc_at_1: float, per_category: int) -> list[str]:
    floor = SEARCH_FACTOR / per_category
    return [] if acc_at_1 >= floor else [
        f"search: fused acc@1 {acc_at_1:.3f} below {SEARCH_FACTOR} x chance = {floor:.3f} "
        f"({per_category} products per category)"]


def pipeline_problems(project: Path, params: Mapping[str, Any]) -> list[str]:
    """Every floor above, for the champions a `dvc repro` left in `project` (empty when all hold).

    Reads the gate reports (reports/promote/, the champion's test scores when it was judged) and
    scores each category's untrained start on the same test items.
    """
    import torch

    from sketch2fashion.models.networks import build_generator
    from sketch2fashion.registry.evidence import colorizer_evidence

    reports = project / "reports"
    problems: list[str] = []
    for category in params["categories"]:
        decision = _champion_scores(reports / "promote" / f"{category}.json")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            start = build_generator(params["model"], int(params["image"]["size"])).eval()
        untrained = colorizer_evidence(start, project / "data", category, params).means()
        problems += colorizer_problems(category, decision, untrained)
    classifier = _champion_scores(reports / "promote" / "sketch-classifier.json")
    problems += classifier_problems(classifier["accuracy"], len(params["categories"]))
    encoder = json.loads((reports / "promote" / "catalog-encoder.json").read_text())
    problems += encoder_problems(_champion_scores(reports / "promote" / "catalog-encoder.json")["reciprocal_rank"],
                                 int(encoder["n_test"]))
    search = json.loads((reports / "search.json").read_text())
    index = json.loads((reports / "index.json").read_text())
    problems += search_problems(search["fused"]["acc@1"], min(index["per_category"].values()))
    return problems


def _champion_scores(path: Path) -> dict[str, float]:
    """The test scores of the model that is champion after the gate run `path` reports."""
    report = json.loads(path.read_text())
    side = "candidate" if report["champion_version"] == report["version"] else "champion"
    return report["test"][side]
