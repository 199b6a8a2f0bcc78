"""DVC stage `tune_search`: this deployment's fused-search weights, chosen on train-split shoppers.

    python training/tune_search.py [--params params.yaml] [--data-dir data]

Simulates shoppers from train products (their edge maps and quick doodles of them, with colour
hints, and the photo each category's champion generates), scores every weight set of
`search.tuning.grid` (catalog/weight_tuning.py), and writes the best by MRR to
`search.tuned_weights`, which search and the service then use. The evidence (every candidate's
acc@1 / acc@10 / MRR, the configured weights' and the single signals') goes to the file and to
MLflow (experiment `search`, run `tune-weights`). The test split never takes part: evaluate_search
judges the choice there.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see training/evaluate_search.py

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import mlflow  # noqa: E402
from tqdm import tqdm  # noqa: E402

from sketch2fashion.catalog.embedder_training import load_products  # noqa: E402
from sketch2fashion.catalog.evaluation import rank_metrics, shopper_queries  # noqa: E402
from sketch2fashion.catalog.features import IMAGE_SIGNALS  # noqa: E402
from sketch2fashion.catalog.search import Catalog, CatalogError, SearchSettings  # noqa: E402
from sketch2fashion.catalog.weight_tuning import (  # noqa: E402
    choose_weights, ranks_for, signal_scores, weight_grid,
)
from sketch2fashion.catalog.tuned_weights import write_tuned_weights  # noqa: E402
from sketch2fashion.data.manifest import read_manifest  # noqa: E402
from sketch2fashion.params import ParamsError, load_params, require  # noqa: E402
from sketch2fashion.registry.colorizer_model import ChampionColorizers  # noqa: E402
from sketch2fashion.registry.tracking import configure, get_or_create_experiment, git_commit  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml", help="Params file (default: %(default)s).")
    parser.add_argument("--data-dir", default=Path("data"), type=Path, help="Data folder (default: %(default)s).")
    return parser.parse_args(argv)


def tune(params: dict, data_dir: Path) -> dict:
    """Score the grid on train shoppers; the chosen weights with their evidence."""
    configure(Path.cwd())
    settings = SearchSettings.from_params(params)
    if settings.tuned_weights is None:
        raise ParamsError("params.yaml search.tuned_weights is empty: there is nowhere to write the weights")
    catalog = Catalog(settings)
    by_id = {r["id"]: r["category"] for r in read_manifest(data_dir / "manifest.csv")}
    per_category = int(require(params, "search.tuning.queries_per_category"))
    products = load_products(data_dir, "train", int(require(params, "image.size")), per_category=per_category)
    seed, hints = int(require(params, "train.seed")), require(params, "hints")
    queries = (shopper_queries(products, by_id, seed=seed, hint_params=hints)
               + shopper_queries(products, by_id, seed=seed, hint_params=hints, doodles=True))
    generate = ChampionColorizers()
    scored = []
    for query in tqdm(queries, desc="tune_search", unit="query"):
        parts = catalog.encode(photo=generate(query.category, query.edges, query.hints), sketch=query.sketch)
        scored.append(signal_scores(catalog, parts, query.category, query.product_id))
    best, table = choose_weights(scored, weight_grid(require(params, "search.tuning.grid")))
    configured = {s: float(require(params, f"search.weights.{s}")) for s in IMAGE_SIGNALS}
    return {
        "weights": best,
        "evidence": {
            "queries": len(queries), "split": "train", "kinds": ["edge map", "doodle"],
            "index_version": catalog.version, "candidates": len(table),
            "chosen": _rounded(table[0][1]),
            "params_weights": {"weights": configured, **_rounded(rank_metrics(ranks_for(configured, scored)))},
            "single_signals": {s: _rounded(rank_metrics(ranks_for({s: 1.0}, scored))) for s in IMAGE_SIGNALS},
            "runners_up": [{"weights": w, **_rounded(m)} for w, m in table[1:6]],
        },
    }


def log_to_mlflow(result: dict) -> str:
    evidence = result["evidence"]
    with mlflow.start_run(experiment_id=get_or_create_experiment("search"), run_name="tune-weights",
                          tags={"git_commit": git_commit(), "index_version": evidence["index_version"]}) as run:
        mlflow.log_params({f"tuned.{k}": v for k, v in result["weights"].items()})
        mlflow.log_metrics({f"train_{k.replace('@', '_at_')}": v for k, v in evidence["chosen"].items() if k != "n"})
        mlflow.log_metrics({f"train_params_weights_{k.replace('@', '_at_')}": v
                            for k, v in evidence["params_weights"].items() if k not in ("n", "weights")})
        return run.info.run_id


def _rounded(metrics: dict) -> dict:
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in metrics.items()}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        params = load_params(args.params)
        result = tune(params, args.data_dir)
    except (ParamsError, FileNotFoundError, CatalogError, ValueError) as exc:
        print(f"tune_search: {exc}", file=sys.stderr)
        return 2
    result["evidence"]["run_id"] = log_to_mlflow(result)
    path = SearchSettings.from_params(params).tuned_weights
    write_tuned_weights(path, result["weights"], result["evidence"])
    print(json.dumps({"weights": result["weights"], "train": result["evidence"]["chosen"],
                      "params_weights": result["evidence"]["params_weights"]}))
    print(f"tune_search: wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
