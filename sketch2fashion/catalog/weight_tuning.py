"""Choose the fused query's signal weights per deployment, on train-split shoppers.

A fixed weight set cannot suit every shop: on the demo the generated photo finds the product by
itself, on real photos a weak colorizer's photo lands far from the products and must count less.
The fused score is additive (`catalog.search`: each signal's similarity times its weight), so one
ranking per signal and query is enough: every weight set of the grid is then scored with a
matrix product instead of a search. The single signals and pairs that the search report shows
(`evaluation.QUERY_KINDS`) are in the grid too, so the chosen weights are never worse than the
best of them on the queries they were chosen on.

The stage `tune_search` writes the choice with `catalog/tuned_weights.py` to the small YAML file
(`search.tuned_weights`) that `SearchSettings` reads over params.yaml's `search.weights`; MLflow
keeps the evidence.
"""
from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sketch2fashion.catalog.evaluation import rank_metrics
from sketch2fashion.catalog.features import IMAGE_SIGNALS, QueryParts


@dataclass(frozen=True)
class SignalScores:
    """One query's similarity to every product of its category, per image signal (rows in
    IMAGE_SIGNALS order; a signal the query lacks is all zeros), and where its product is."""

    scores: np.ndarray  # (len(IMAGE_SIGNALS), products) float64, columns in id order
    target: int         # column of the product the shopper drew; -1 when it is not in the catalog
    present: tuple[bool, ...]  # per signal: did the query have it (a drawing whose hints are all
                               # black or white has no hint colours: the served search then ranks nothing)


def signal_scores(catalog: Any, parts: QueryParts, category: str, product_id: str) -> SignalScores:
    """Score every product of `category` by each signal alone (weight 1), exactly as the served
    search would (`Catalog.search_parts`)."""
    everything = len(catalog)
    by_signal = []
    ids: list[str] | None = None
    for name in IMAGE_SIGNALS:
        hits = catalog.search_parts(parts, category=category, top_k=everything,
                                    weights={s: float(s == name) for s in (*IMAGE_SIGNALS, "text", "colour_words")})
        by_signal.append({h.id: h.score for h in hits})
        if hits and ids is None:
            ids = sorted(h.id for h in hits)
    ids = ids or []
    matrix = np.array([[signal.get(pid, 0.0) for pid in ids] for signal in by_signal], np.float64)
    target = ids.index(product_id) if product_id in ids else -1
    present = tuple(getattr(parts, name) is not None for name in IMAGE_SIGNALS)
    return SignalScores(matrix.reshape(len(IMAGE_SIGNALS), len(ids)), target, present)


def weight_grid(grid: Mapping[str, Sequence[float]]) -> list[dict[str, float]]:
    """Every combination of `grid` (signal -> values) plus each single signal and the
    sketch + hint colour pair at weight 1 (the report's other query kinds); all-zero sets dropped."""
    unknown = set(grid) - set(IMAGE_SIGNALS)
    if unknown:
        raise ValueError(f"search.tuning.grid: unknown signal(s) {sorted(unknown)}; known: {list(IMAGE_SIGNALS)}")
    values = [tuple(float(v) for v in grid.get(name, (0.0,))) for name in IMAGE_SIGNALS]
    sets = [dict(zip(IMAGE_SIGNALS, combo)) for combo in itertools.product(*values)]
    sets += [{s: float(s == name) for s in IMAGE_SIGNALS} for name in IMAGE_SIGNALS]
    sets.append({s: float(s in ("sketch", "hint_colour")) for s in IMAGE_SIGNALS})
    unique = {tuple(w[s] for s in IMAGE_SIGNALS): w for w in sets if any(w.values())}
    return list(unique.values())


def ranks_for(weights: Mapping[str, float], queries: Sequence[SignalScores]) -> list[int | None]:
    """1-based rank of each query's product under `weights`, as the served search orders them (by
    score, ties by id); None when it would not be returned (as `evaluation.rank_of` says): not in
    the catalog, or none of the weighted signals present in the query (nothing to rank by)."""
    w = np.array([float(weights.get(s, 0.0)) for s in IMAGE_SIGNALS])
    ranks: list[int | None] = []
    for query in queries:
        if query.target < 0 or not any(weight and present for weight, present in zip(w, query.present)):
            ranks.append(None)
            continue
        fused = w @ query.scores
        ahead = fused > fused[query.target]
        ahead[: query.target] |= fused[: query.target] == fused[query.target]  # a tie goes to the smaller id
        ranks.append(1 + int(np.count_nonzero(ahead)))
    return ranks


def choose_weights(queries: Sequence[SignalScores], candidates: Iterable[Mapping[str, float]]
                   ) -> tuple[dict[str, float], list[tuple[dict[str, float], dict[str, float]]]]:
    """The weight set with the best MRR (then acc@10, then acc@1) on `queries`, and every
    candidate's metrics, best first."""
    scored = [(dict(w), rank_metrics(ranks_for(w, queries))) for w in candidates]
    if not scored:
        raise ValueError("no weight sets to choose from")
    scored.sort(key=lambda item: (-item[1]["mrr"], -item[1]["acc@10"], -item[1]["acc@1"]))
    return scored[0][0], scored
