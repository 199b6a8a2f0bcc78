"""DVC stage `train_embedder`: the shared sketch/photo encoder for catalog search, tracked in MLflow.

Trains `sketch2fashion.catalog.embedder.ImageEncoder` with InfoNCE on every category's train split
(sketch <-> photo and photo <-> photo pairs), scores sketch -> photo retrieval on val, and writes
  models/embedder.pt            weights + config
  reports/embedder.json         val acc@1 / acc@10 / MRR (DVC metrics) and the MLflow run id
and registers the encoder as `catalog-encoder` in MLflow (alias champion when its val MRR is the best).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import mlflow
import torch

from sketch2fashion.catalog.embedder import save_encoder
from sketch2fashion.catalog.embedder_training import evaluate_retrieval, train_embedder
from sketch2fashion.colorizer.augment import augment_from_params
from sketch2fashion.params import ParamsError, load_params
from sketch2fashion.registry.encoder_model import log_encoder, register_encoder
from sketch2fashion.registry.tracking import configure, get_or_create_experiment, git_commit

ENCODER_ARGS = ("dim", "size", "width", "epochs", "batch_size", "lr", "temperature",
                "learn_temperature", "photo_pair_weight", "seed", "doodle_share")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--data-dir", default="data", type=Path)
    parser.add_argument("--out", default=Path("models/embedder.pt"), type=Path)
    parser.add_argument("--report", default=Path("reports/embedder.json"), type=Path)
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
    params = load_params(args.params)
    settings = dict((params.get("search") or {}).get("encoder") or {})
    torch.set_num_threads(int(settings.get("threads", 1)))
    encoder_args = {k: settings[k] for k in ENCODER_ARGS if k in settings}
    hint_params = params.get("hints") or {}
    configure(Path.cwd())
    experiment_id = get_or_create_experiment("embedder")
    with mlflow.start_run(experiment_id=experiment_id, run_name="embedder-train",
                          tags={"git_commit": git_commit()}) as active:
        mlflow.log_params({f"search.encoder.{k}": v for k, v in encoder_args.items()})

        def log_epoch(stats: dict) -> None:
            print(f"embedder epoch {int(stats['epoch'])}: loss {stats['loss']:.4f}", file=sys.stderr)
            mlflow.log_metrics({k: float(v) for k, v in stats.items() if k != "epoch"}, step=int(stats["epoch"]))

        encoder, history = train_embedder(
            args.data_dir, log=log_epoch, hint_params=hint_params,
            augment=augment_from_params((params.get("train") or {}).get("augment")), **encoder_args)
        metrics = evaluate_retrieval(encoder, args.data_dir, "val", seed=int(encoder_args.get("seed", 0)),
                                     hint_params=hint_params)
        mlflow.log_metrics({k.replace("@", "_at_"): float(v) for k, v in metrics.items()})
        save_encoder(args.out, encoder, {"search.encoder": encoder_args})
        model_uri = log_encoder(args.out)
        registered = register_encoder(model_uri, active.info.run_id, metrics)
        report = {"run_id": active.info.run_id, "epochs": len(history),
                  "final_loss": round(float(history[-1]["loss"]), 4),
                  **{k: round(float(v), 4) for k, v in metrics.items()},
                  "registered_version": registered["version"], "champion": registered["champion"]}
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        report = run(args)
    except (ParamsError, FileNotFoundError) as exc:
        print(f"train_embedder: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
