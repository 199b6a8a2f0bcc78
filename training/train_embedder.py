"""DVC stage `train_embedder`: the shared sketch/photo encoder for catalog search, tracked in MLflow.

Trains `sketch2fashion.catalog.embedder.ImageEncoder` with InfoNCE on every category's train split
(sketch <-> photo and photo <-> photo pairs), scores sketch -> photo retrieval on val, registers
the encoder as `catalog-encoder` in MLflow, and puts it through the champion gate
(registry/gate.py): it and the champion rank the same test products' photos for their sketches
and doodles, and alias `champion` moves only when the candidate's MRR is significantly better
(params.yaml `promote.encoder`). The index stage embeds the catalog with the champion. Writes
  models/embedder.pt                    weights + config: the candidate
  reports/embedder.json                 val acc@1 / acc@10 / MRR (DVC metrics), test MRR, MLflow run id
  reports/promote/catalog-encoder.json  the gate's decision: test scores of both, the interval
Settings come from params.yaml `search.encoder` (every key required), `hints`, `train.augment`, `promote`.
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
from sketch2fashion.data.manifest import ManifestError
from sketch2fashion.imaging.io import write_bytes_atomic
from sketch2fashion.params import ParamsError, load_params, require, section
from sketch2fashion.registry.encoder_model import ENCODER_MODEL, load_version, log_encoder, register_encoder
from sketch2fashion.registry.evidence import encoder_evidence
from sketch2fashion.registry.gate_rules import ENCODER, gate_rule
from sketch2fashion.registry.gatekeeper import gate_version
from sketch2fashion.registry.tracking import configure, get_or_create_experiment, git_commit

ENCODER_ARGS = ("dim", "size", "width", "epochs", "batch_size", "lr", "temperature",
                "learn_temperature", "photo_pair_weight", "seed", "doodle_share")
KEYS = (*ENCODER_ARGS, "threads")
"""params.yaml `search.encoder:` keys, every one required (params.yaml holds their values)."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--data-dir", default="data", type=Path)
    parser.add_argument("--out", default=Path("models/embedder.pt"), type=Path)
    parser.add_argument("--report", default=Path("reports/embedder.json"), type=Path)
    parser.add_argument("--decision", default=Path("reports/promote/catalog-encoder.json"), type=Path,
                        help="the champion gate's report (default: %(default)s)")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
    params = load_params(args.params)
    settings = section(params, "search.encoder", KEYS, args.params)
    rule = gate_rule(params, ENCODER, source=args.params)
    torch.set_num_threads(int(settings["threads"]))
    encoder_args = {k: settings[k] for k in ENCODER_ARGS}
    hint_params = require(params, "hints", args.params)
    client = configure(Path.cwd())
    experiment_id = get_or_create_experiment("embedder")
    with mlflow.start_run(experiment_id=experiment_id, run_name="embedder-train",
                          tags={"git_commit": git_commit()}) as active:
        mlflow.log_params({f"search.encoder.{k}": v for k, v in encoder_args.items()})

        def log_epoch(stats: dict) -> None:
            print(f"embedder epoch {int(stats['epoch'])}: loss {stats['loss']:.4f}", file=sys.stderr)
            mlflow.log_metrics({k: float(v) for k, v in stats.items() if k != "epoch"}, step=int(stats["epoch"]))

        encoder, history = train_embedder(
            args.data_dir, log=log_epoch, hint_params=hint_params,
            augment=augment_from_params(require(params, "train.augment", args.params)), **encoder_args)
        metrics = evaluate_retrieval(encoder, args.data_dir, "val", seed=int(encoder_args["seed"]),
                                     hint_params=hint_params)
        mlflow.log_metrics({k.replace("@", "_at_"): float(v) for k, v in metrics.items()})
        save_encoder(args.out, encoder, {"search.encoder": encoder_args})
        model_uri = log_encoder(args.out)
        version = register_encoder(model_uri, active.info.run_id, metrics)
        outcome = gate_version(client, ENCODER_MODEL, version.version, rule,
                               lambda mv: encoder_evidence(load_version(mv), args.data_dir, params),
                               extra={"run_id": active.info.run_id,
                                      "val": {"mrr": metrics["mrr"], "doodle_mrr": metrics["doodle_mrr"],
                                              "acc@10": metrics["acc@10"]}})
        mlflow.log_metrics({f"test_{k}": v for k, v in outcome.candidate_test.items() if v is not None})
        report = {"run_id": active.info.run_id, "epochs": len(history),
                  "final_loss": round(float(history[-1]["loss"]), 4),
                  **{k: round(float(v), 4) for k, v in metrics.items()},
                  "test_mrr": outcome.candidate_test.get("reciprocal_rank"), "n_test": outcome.n_test,
                  "registered_version": int(version.version), "champion": outcome.promoted,
                  "promotion_reason": outcome.decision.reason}
    write_bytes_atomic(args.decision, (json.dumps(outcome.to_dict(), indent=2) + "\n").encode("utf-8"))
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        report = run(args)
    except (ParamsError, ManifestError, FileNotFoundError, ValueError) as exc:
        print(f"train_embedder: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
