"""DVC stage `evaluate_search`: can a shopper find the product they drew? Metrics per query kind.

For every test product (held out from training, epoch choice and the weight tuning of
`tune_search`) a shopper's query is simulated (its edge map + colour hints, and the photo
the category's champion colorizer generates from them) and run against the published catalog
index, which holds every product. Reports acc@1, acc@10 and MRR for the query kinds sketch,
colour, photo, sketch+colour and fused; recall@10 of HNSW against exact search on the same
vectors; and end-to-end query latency p50/p99 (encoding included, generation excluded). The same
again (under `doodle`) for a quick doodle of each product in the evaluation style, with what
`category=auto` gives those doodle shoppers (the `sketch-classifier` champion): the classifier's
accuracy and the share of the top-10 products in the right category.
Writes reports/search.json (DVC metrics) and logs the same numbers to MLflow (experiment `search`).
"""
from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning: after a colorizer call, spinning torch threads
# starved the encoder and OpenCV of this 2-core machine and made searches 25x slower (measured:
# p50 228 ms vs 8.5 ms). Must be set before torch starts its thread pool.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import mlflow  # noqa: E402
from tqdm import tqdm  # noqa: E402

from sketch2fashion.catalog.embedder_training import load_products
from sketch2fashion.catalog.evaluation import QUERY_KINDS, evaluate_search, shopper_queries
from sketch2fashion.catalog.search import Catalog, CatalogError
from sketch2fashion.classifier.model import predict_category
from sketch2fashion.classifier.registry import load_champion
from sketch2fashion.data.manifest import read_manifest
from sketch2fashion.params import ParamsError, categories, load_params, require
from sketch2fashion.registry.colorizer_model import ChampionColorizers
from sketch2fashion.registry.tracking import configure, get_or_create_experiment, git_commit


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--data-dir", default=Path("data"), type=Path)
    parser.add_argument("--report", default=Path("reports/search.json"), type=Path)
    parser.add_argument("--no-generator", action="store_true",
                        help="skip the query kinds that need a champion colorizer")
    parser.add_argument("--categories", nargs="+", default=None,
                        help="only these categories' products (default: params.yaml categories)")
    parser.add_argument("--split", default="test", choices=["test", "val", "train"],
                        help="whose products become shoppers (default: %(default)s)")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
    params = load_params(args.params)
    size = int(params["image"]["size"])
    client = configure(Path.cwd())
    catalog = Catalog.open(params)
    by_id = {r["id"]: r["category"] for r in read_manifest(args.data_dir / "manifest.csv")}
    wanted = set(args.categories or categories(params))
    products = [p for p in load_products(args.data_dir, args.split, size) if by_id[p.id] in wanted]
    seed = int((params.get("train") or {}).get("seed", 0))
    queries = shopper_queries(products, by_id, seed=seed, hint_params=params.get("hints") or {})
    doodles = shopper_queries(products, by_id, seed=seed, hint_params=params.get("hints") or {}, doodles=True)
    generate = None if args.no_generator else ChampionColorizers()
    classify = None
    classifier = load_champion(client)  # what category=auto serves; skipped before the first champion
    if classifier is not None:
        classify = lambda drawing: predict_category(classifier, drawing)[0]  # noqa: E731
    with tqdm(total=2 * len(queries), desc="evaluate_search", unit="query") as bar:
        report = evaluate_search(catalog, queries, generate, progress=lambda i: bar.update(1))
        report["doodle"] = evaluate_search(catalog, doodles, generate, progress=lambda i: bar.update(1),
                                           classify=classify)
    report["index_version"] = catalog.version
    report["catalog_products"] = len(catalog)
    report["weights"] = catalog.settings.weights
    tuned = catalog.settings.tuned_weights
    report["weights_from"] = "params.yaml" if tuned is None or not tuned.is_file() else \
        require(params, "search.tuned_weights")
    report["split"] = args.split

    experiment_id = get_or_create_experiment("search")
    with mlflow.start_run(experiment_id=experiment_id, run_name="evaluate-search",
                          tags={"git_commit": git_commit(), "index_version": catalog.version}) as active:
        mlflow.log_params({f"search.weights.{k}": v for k, v in catalog.settings.weights.items()})
        metrics = {f"{kind}_{name.replace('@', '_at_')}": value
                   for kind in QUERY_KINDS if kind in report
                   for name, value in report[kind].items() if name != "n"}
        metrics.update({f"doodle_{kind}_{name.replace('@', '_at_')}": value
                        for kind in QUERY_KINDS if kind in report["doodle"]
                        for name, value in report["doodle"][kind].items() if name != "n"})
        metrics.update({f"doodle_auto_{k}": v for k, v in report["doodle"].get("auto_category", {}).items()
                        if k != "n"})
        metrics.update({"index_recall_at_10": report["index"]["recall@10"],
                        "latency_p50_ms": report["latency_ms"]["p50"], "latency_p99_ms": report["latency_ms"]["p99"]})
        mlflow.log_metrics({k.replace("+", "_"): float(v) for k, v in metrics.items()})
        report["run_id"] = active.info.run_id
    return _rounded(report)


def _rounded(value):
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        report = run(args)
    except (ParamsError, FileNotFoundError, CatalogError, ValueError) as exc:
        print(f"evaluate_search: {exc}", file=sys.stderr)
        return 2
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=2) + "\n")
    table = [f"{'query':<14}{'acc@1':>8}{'acc@10':>8}{'mrr':>8}"]
    table += [f"{k:<14}{report[k]['acc@1']:>8.3f}{report[k]['acc@10']:>8.3f}{report[k]['mrr']:>8.3f}"
              for k in QUERY_KINDS if k in report]
    table += [f"{'doodle ' + k:<14}{report['doodle'][k]['acc@1']:>8.3f}{report['doodle'][k]['acc@10']:>8.3f}"
              f"{report['doodle'][k]['mrr']:>8.3f}" for k in QUERY_KINDS if k in report["doodle"]]
    print("\n".join(table))
    print(json.dumps({k: report[k] for k in ("index", "latency_ms", "n_queries")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
