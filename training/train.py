"""DVC stage `train@<category>`: train one category's colorizer, tracked in MLflow.

Reads params.yaml (`image`, `model`, `train`, `hints`), trains on data/manifest.csv's train split,
scores SSIM/PSNR/L1 on the whole val split at every checkpoint, and writes:
  models/<category>/best_generator.pt   best-SSIM generator weights
  models/<category>/checkpoints/        resumable state (kept across runs: DVC `persist`)
  reports/train/<category>.json         the best epoch (DVC metrics) + the MLflow run id
  reports/train/<category>.csv          SSIM etc. per checkpoint epoch (DVC plots)
A rerun after a crash resumes from the newest checkpoint made with the same configuration.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
from pathlib import Path

import mlflow

from sketch2fashion.colorizer.evaluate import sample_grid, save_sample_grid
from sketch2fashion.colorizer.progress import PROGRESS_FILE, ProgressFile
from sketch2fashion.colorizer.run import ColorizerRun
from sketch2fashion.colorizer.trainer import resumed_state
from sketch2fashion.params import ParamsError, load_params
from sketch2fashion.registry.tracking import configure, get_or_create_experiment, run_tags

HISTORY_COLUMNS = ("epoch", "ssim", "psnr", "l1", "loss_g_l1", "loss_g_gan", "loss_d", "train_images_per_s")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--category", required=True)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--data-dir", default="data", type=Path)
    parser.add_argument("--out", type=Path, default=None, help="default: models/<category>")
    parser.add_argument("--report", type=Path, default=None, help="default: reports/train/<category>.json")
    parser.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                        help="continue from the newest matching checkpoint (default) or start over")
    return parser.parse_args(argv)


def flat_params(params: dict) -> dict[str, object]:
    """The params that define a training run, flattened for mlflow.log_params."""
    out: dict[str, object] = {"image.size": params["image"]["size"]}
    for section in ("model", "train", "hints"):
        for key, value in (params.get(section) or {}).items():
            if isinstance(value, dict):
                out.update({f"{section}.{key}.{k}": v for k, v in value.items()})
            else:
                out[f"{section}.{key}"] = value
    return out


def write_history(rows: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=HISTORY_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows({k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items()} for row in rows)


def train_category(args: argparse.Namespace) -> dict:
    root = Path.cwd()
    params = load_params(args.params)
    category = args.category
    out = args.out or Path("models") / category
    report_path = args.report or Path("reports/train") / f"{category}.json"
    client = configure(root)
    tags = run_tags(category, root)
    run = ColorizerRun.prepare(params, args.data_dir, category, data_hash=tags["dvc_data_hash"])
    prior = resumed_state(out) if args.resume else {}
    run_id = prior.get("mlflow_run_id") if prior.get("config_id") == run.config_id else None
    print(f"train@{run.describe()}", file=sys.stderr)

    experiment_id = get_or_create_experiment(f"colorizer-{category}", client=client)
    with mlflow.start_run(run_id=run_id, experiment_id=None if run_id else experiment_id,
                          run_name=None if run_id else f"{category}-train", tags=None if run_id else tags) as active:
        if run_id is None:
            mlflow.log_params(flat_params(params))
            mlflow.log_params({"train_images": len(run.train_set), "val_images": len(run.val_set),
                               "device": run.device.type, "precision": str(run.trainer.dtype)})

        def on_eval(epoch: int, row: dict, improved: bool) -> None:
            mlflow.log_metrics({k: float(v) for k, v in row.items() if k != "epoch"}, step=epoch)
            if improved:
                with tempfile.TemporaryDirectory() as tmp:
                    grid_path = Path(tmp) / "sample_grid.png"
                    save_sample_grid(grid_path, sample_grid(run.trainer.generator, run.val_set, n=6,
                                                            device=run.device))
                    mlflow.log_artifact(str(grid_path), artifact_path=f"samples/epoch-{epoch:04d}")

        history = run.fit(out, resume=args.resume, on_eval=on_eval,
                          extra_state={"mlflow_run_id": active.info.run_id},
                          log=lambda msg: print(msg, file=sys.stderr),
                          progress=ProgressFile(out / PROGRESS_FILE, category, run.config.epochs))
        best = max(history, key=lambda row: row["ssim"])
        mlflow.log_metrics({"best_ssim": best["ssim"], "best_epoch": best["epoch"]})
        mlflow.log_artifact(str(out / "best_generator.pt"), artifact_path="checkpoint")
        report = {"category": category, "run_id": active.info.run_id, "epoch": int(best["epoch"]),
                  "ssim": round(best["ssim"], 6), "psnr": round(best["psnr"], 4), "l1": round(best["l1"], 6),
                  "epochs": run.config.epochs, "evaluated_epochs": [int(r["epoch"]) for r in history],
                  "train_images_per_s": round(sum(r["train_images_per_s"] for r in history) / len(history), 2)}
    write_history(history, report_path.with_suffix(".csv"))
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        report = train_category(args)
    except (ParamsError, FileNotFoundError) as exc:
        print(f"train@{args.category}: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
