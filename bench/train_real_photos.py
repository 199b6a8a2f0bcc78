"""Train and score the colorizer per category on an already-ingested data folder, no MLflow.

For measuring on the real photo set (../shared/data) where the DVC/MLflow stack is not
installed, e.g. on a lent GPU machine. It trains exactly as the `train@<category>` stage does
(`sketch2fashion.colorizer.run.ColorizerRun`) and prints/writes per-category val SSIM.

  python -m bench.train_real_photos --data-dir /tmp/realdata/data --out /tmp/real-results \\
      --set train.epochs=40 --set model.ngf=64
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import yaml

from sketch2fashion.colorizer.evaluate import sample_grid, save_sample_grid
from sketch2fashion.colorizer.run import ColorizerRun
from sketch2fashion.params import categories, load_params


def apply_overrides(params: dict, pairs: list[str]) -> dict:
    """`section.key=value` overrides (value parsed as YAML), like `dvc exp run --set-param`."""
    for pair in pairs:
        key, _, raw = pair.partition("=")
        node = params
        *parents, leaf = key.split(".")
        for name in parents:
            node = node.setdefault(name, {})
        node[leaf] = yaml.safe_load(raw)
    return params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True, help="folder with manifest.csv, raw/, masks/, edges/")
    parser.add_argument("--out", type=Path, required=True, help="results.json and sample grids go here")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--categories", nargs="*", default=None)
    args = parser.parse_args()

    params = apply_overrides(load_params(args.params), args.overrides)
    args.out.mkdir(parents=True, exist_ok=True)
    results = {"params": {k: params.get(k) for k in ("image", "model", "train")}, "categories": {}}
    for category in args.categories or categories(params):
        run = ColorizerRun.prepare(params, args.data_dir, category)
        print(run.describe(), flush=True)
        started = time.perf_counter()
        history = run.fit(args.out / category, resume=False)
        best = max(history, key=lambda row: row["ssim"])
        save_sample_grid(args.out / f"{category}.png", sample_grid(run.trainer.generator, run.val_set, n=6,
                                                                 device=run.device))
        results["categories"][category] = {
            "best_epoch": int(best["epoch"]), "ssim": round(best["ssim"], 4), "psnr": round(best["psnr"], 2),
            "l1": round(best["l1"], 4), "train": len(run.train_set), "val": len(run.val_set),
            "seconds": round(time.perf_counter() - started, 1),
            "train_images_per_s": round(max(r["train_images_per_s"] for r in history), 1),
            "ssim_by_epoch": {int(r["epoch"]): round(r["ssim"], 4) for r in history},
            "device": run.device.type, "precision": str(run.trainer.dtype),
        }
        (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        print(json.dumps({category: results["categories"][category]}), flush=True)


if __name__ == "__main__":
    main()
