"""DVC stage `index`: embed the shop catalog with the champion encoder and publish a new index version.

Reads the products of the catalog store (`s2f catalog ingest`, the `catalog` stage) or, with
`--items manifest`, the ingested photo set itself (a photo collection without a shop feed), embeds
each photo with the `catalog-encoder` champion of the MLflow registry (what the champion gate of
train_embedder let through) plus its Lab colour histogram, and publishes a new version under
`catalog.index` (readers such as the running service keep the old one until they refresh). The
version carries the encoder's weights and its registry version (`encoder.json`).
Writes reports/index.json: version, encoder version, product counts per category, vector size, build time.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from sketch2fashion.catalog.embedder import save_encoder
from sketch2fashion.catalog.search import (
    CatalogError, FeatureLayout, SearchSettings, build_catalog_index, items_from_manifest, items_from_store,
)
from sketch2fashion.params import ParamsError, load_params, require
from sketch2fashion.registry.encoder_model import ENCODER_MODEL, champion, describe, load_version
from sketch2fashion.registry.tracking import configure


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--items", choices=("store", "manifest"), default="store",
                        help="index the catalog store (default) or the ingested photos in DATA_DIR/manifest.csv")
    parser.add_argument("--data-dir", default=Path("data"), type=Path)
    parser.add_argument("--report", default=Path("reports/index.json"), type=Path)
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
    params = load_params(args.params)
    root = Path.cwd()
    if args.items == "manifest":
        items = items_from_manifest(args.data_dir)
    else:
        store = Path(require(params, "catalog.store", args.params))
        items = items_from_store(store)
    client = configure(root)
    current = champion(client)
    if current is None:
        raise CatalogError(f"{ENCODER_MODEL} has no champion in the MLflow registry; run `dvc repro train_embedder`")
    encoder = load_version(current)
    encoder_info = describe(current)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="s2f-encoder-") as tmp:
        weights = Path(tmp) / "encoder.pt"
        save_encoder(weights, encoder, {"registry": encoder_info})
        version = build_catalog_index(params, project_root=root, items=items, encoder_path=weights,
                                      encoder_info=encoder_info)
    settings = SearchSettings.from_params(params, root)
    layout = FeatureLayout(encoder.dim, settings.colour_bins)
    return {"version": version, "encoder": encoder_info, "products": len(items),
            "per_category": dict(sorted(Counter(i.category for i in items).items())),
            "vector_dim": layout.dim, "build_s": round(time.perf_counter() - started, 2),
            "index_dir": str(settings.index_dir.relative_to(root) if settings.index_dir.is_relative_to(root)
                             else settings.index_dir)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        report = run(args)
    except (ParamsError, FileNotFoundError, CatalogError) as exc:
        print(f"index: {exc}", file=sys.stderr)
        return 2
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
