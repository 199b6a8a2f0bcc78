"""DVC stage `train_classifier`: the sketch -> category classifier behind `category=auto`.

Trains `sketch2fashion.classifier.model.SketchClassifier` on shopper-like sketches of every
category's train split, scores it on fixed val sketches, logs it to MLflow, registers it as
`sketch-classifier` and moves alias `champion` to it when its val accuracy is at least the
champion's. Writes
  models/classifier.pt          weights + config (category names included)
  reports/classifier.json       val accuracy, per-category accuracy, confusion matrix (DVC
                                metrics), MLflow run id, registered version, promotion decision
Settings come from params.yaml `classifier:` (defaults below when absent), plus `categories`,
`hints` and `train.augment`.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import mlflow
import torch

from sketch2fashion.classifier.model import save_classifier
from sketch2fashion.classifier.registry import log_and_register, promote_if_not_worse
from sketch2fashion.classifier.training import evaluate_classifier, load_labelled, train_classifier
from sketch2fashion.colorizer.augment import augment_from_params
from sketch2fashion.data.manifest import ManifestError
from sketch2fashion.params import ParamsError, categories, load_params
from sketch2fashion.registry.tracking import configure, get_or_create_experiment, git_commit

DEFAULTS = {"image_size": 64, "load_size": 128, "width": 16, "blocks": 5, "dim": 64,
            "epochs": 30, "batch_size": 16, "lr": 0.003, "weight_decay": 0.0001, "seed": 0,
            "threads": 1, "doodle_share": 0.0}
"""params.yaml `classifier:` keys and their values when the section (or a key) is absent."""
TRAIN_ARGS = ("image_size", "width", "blocks", "dim", "epochs", "batch_size", "lr", "weight_decay", "seed",
              "doodle_share")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--data-dir", default="data", type=Path)
    parser.add_argument("--out", default=Path("models/classifier.pt"), type=Path)
    parser.add_argument("--report", default=Path("reports/classifier.json"), type=Path)
    return parser.parse_args(argv)


def settings_from(params: dict) -> dict:
    """params.yaml `classifier:` over DEFAULTS; an unknown key is refused (a typo must not be ignored)."""
    section = dict(params.get("classifier") or {})
    unknown = sorted(set(section) - set(DEFAULTS))
    if unknown:
        raise ParamsError(f"params: classifier: unknown key(s) {unknown}; accepted: {sorted(DEFAULTS)}")
    return {**DEFAULTS, **section}


def run(args: argparse.Namespace) -> dict:
    params = load_params(args.params)
    settings = settings_from(params)
    names = categories(params)
    torch.set_num_threads(int(settings["threads"]))
    hint_params = params.get("hints") or {}
    train_set = load_labelled(args.data_dir, "train", int(settings["load_size"]), names)
    val_set = load_labelled(args.data_dir, "val", int(settings["load_size"]), names)
    client = configure(Path.cwd())
    experiment_id = get_or_create_experiment("classifier")
    with mlflow.start_run(experiment_id=experiment_id, run_name="classifier-train",
                          tags={"git_commit": git_commit()}) as active:
        mlflow.log_params({f"classifier.{k}": v for k, v in settings.items()})
        mlflow.log_param("categories", ",".join(names))

        def log_epoch(stats: dict) -> None:
            print(f"classifier epoch {int(stats['epoch'])}: loss {stats['loss']:.4f} "
                  f"train acc {stats['train_accuracy']:.3f}", file=sys.stderr)
            mlflow.log_metrics({k: float(v) for k, v in stats.items() if k != "epoch"}, step=int(stats["epoch"]))

        classifier, history = train_classifier(
            train_set, log=log_epoch, hint_params=hint_params,
            augment=augment_from_params((params.get("train") or {}).get("augment")),
            **{k: settings[k] for k in TRAIN_ARGS})
        metrics = evaluate_classifier(classifier, val_set, seed=int(settings["seed"]), hint_params=hint_params)
        doodles = evaluate_classifier(classifier, val_set, seed=int(settings["seed"]), hint_params=hint_params,
                                      doodles=True)
        mlflow.log_metric("val_accuracy", metrics["accuracy"])
        mlflow.log_metric("val_doodle_accuracy", doodles["accuracy"])
        mlflow.log_metrics({f"val_accuracy_{c}": a for c, a in metrics["per_category"].items() if a is not None})
        mlflow.log_dict(metrics["confusion_matrix"], "confusion_matrix.json")
        save_classifier(args.out, classifier, {"classifier": settings, "val_accuracy": metrics["accuracy"]})
        version = log_and_register(args.out, metrics["accuracy"], client,
                                   {"categories": ",".join(names), "git_commit": git_commit()})
        promotion = promote_if_not_worse(client, version.version)
        report = {"accuracy": round(metrics["accuracy"], 4),
                  "per_category": {c: None if a is None else round(a, 4) for c, a in metrics["per_category"].items()},
                  "confusion_matrix": metrics["confusion_matrix"], "n_val": metrics["n"],
                  "doodle_accuracy": round(doodles["accuracy"], 4),
                  "doodle_per_category": {c: None if a is None else round(a, 4)
                                          for c, a in doodles["per_category"].items()},
                  "doodle_confusion_matrix": doodles["confusion_matrix"],
                  "n_train": len(train_set.products), "epochs": len(history),
                  "final_loss": round(float(history[-1]["loss"]), 4),
                  "run_id": active.info.run_id, "registered_version": int(version.version),
                  "champion": promotion.promoted, "promotion_reason": promotion.reason}
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        report = run(args)
    except (ParamsError, ManifestError, FileNotFoundError) as exc:
        print(f"train_classifier: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
