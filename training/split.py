"""DVC stage `split`: merge the per-category manifests and assign train/val/test by a stable hash.

    python training/split.py [--data-dir data] [--report reports/split.json]

Val chooses each model's epoch, test judges its promotion (registry/gate.py), train trains it.
params.yaml `split`: val_fraction, test_fraction, min_test (the smallest test split per category
where the data allows, see sketch2fashion/data/split.py) and the salt. Writes data/manifest.csv
(every category, `split` filled) and a count report for `dvc metrics`.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


from sketch2fashion.data.manifest import (
    ISOLATION_FAILED, ManifestError, read_manifest, write_manifest,
)
from sketch2fashion.data.split import SPLITS, SplitPlan, assign_splits, split_counts
from sketch2fashion.imaging.io import write_bytes_atomic
from sketch2fashion.params import ParamsError, categories, load_params, section


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Merge data/raw/<category>/manifest.csv for every category in params and "
                    "assign train/val/test splits by a salted hash of each id.")
    parser.add_argument("--params", default="params.yaml", help="Params file (default: %(default)s).")
    parser.add_argument("--data-dir", default="data", help="Data folder (default: %(default)s).")
    parser.add_argument("--out", default=None,
                        help="Combined manifest (default: <data-dir>/manifest.csv).")
    parser.add_argument("--report", default="reports/split.json",
                        help="Report JSON (default: %(default)s).")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    data_dir = Path(args.data_dir)
    try:
        params = load_params(args.params)
        plan = split_plan(params, args.params)
        rows = []
        for category in categories(params):
            rows.extend(read_manifest(data_dir / "raw" / category / "manifest.csv"))
    except (ParamsError, ManifestError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    rows = assign_splits(rows, plan)
    out = Path(args.out) if args.out else data_dir / "manifest.csv"
    write_manifest(out, rows)
    report = _report(rows, plan)
    write_bytes_atomic(args.report, (json.dumps(report, indent=2) + "\n").encode("utf-8"))
    total = report["total"]
    print(f"split: {total['train']} train, {total['val']} val, {total['test']} test "
          f"({total['val_fraction']:.1%} val, {total['test_fraction']:.1%} test) -> {out}")
    return 0


def split_plan(params: dict, source: str) -> SplitPlan:
    """params.yaml `split`, every key required (params.yaml is the one table of defaults)."""
    raw = section(params, "split", ("val_fraction", "test_fraction", "min_test", "salt"), source)
    try:
        return SplitPlan(float(raw["val_fraction"]), float(raw["test_fraction"]), int(raw["min_test"]),
                         str(raw["salt"]))
    except (TypeError, ValueError) as exc:
        raise ParamsError(f"{source}: split: {exc}; use fractions within 0..1 that add up to at most 1 "
                          "and a min_test of 0 or more") from exc


def _report(rows: list[dict], plan: SplitPlan) -> dict:
    per_category = split_counts(rows)
    for category, counts in per_category.items():
        counts["isolation_failed"] = sum(1 for row in rows if row["category"] == category
                                         and row["isolation"] == ISOLATION_FAILED)
    totals = {split: sum(counts[split] for counts in per_category.values()) for split in SPLITS}
    images = sum(totals.values())
    return {
        "val_fraction_target": plan.val_fraction,
        "test_fraction_target": plan.test_fraction,
        "min_test": plan.min_test,
        "salt": plan.salt,
        "total": {**totals, "images": images,
                  "val_fraction": round(totals["val"] / images, 4) if images else 0.0,
                  "test_fraction": round(totals["test"] / images, 4) if images else 0.0},
        "categories": per_category,
    }


if __name__ == "__main__":
    sys.exit(main())
