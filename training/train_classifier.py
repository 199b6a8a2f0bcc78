"""DVC stage `train_classifier`: the sketch -> category classifier behind `category=auto`.

Trains `sketch2fashion.classifier.model.SketchClassifier` on shopper-like sketches of every
category's train split, scores it on fixed val sketches, logs it to MLflow and registers it as
`sketch-classifier`. Then the champion gate (registry/gate.py) scores it and the champion on the
same test sketches and doodles and moves alias `champion` to it only when it names significantly
more test sketches right (params.yaml `promote.classifier`); serving follows that alias. Writes
  models/classifier.pt                  weights + config (category names included): the candidate
  reports/classifier.json               val accuracy, per-category accuracy, confusion matrix (DVC
                                        metrics), MLflow run id, registered version, and the accuracy on
                                        the real drawings of `classifier.real_doodles` when that folder
                                        is there (null when not: a fresh clone without ../shared)
  reports/promote/sketch-classifier.json  the gate's decision: test scores of both, the interval
Settings come from params.yaml `classifier:` (every key required), plus `categories`, `hints`,
`train.augment` and `promote`.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import mlflow
import torch

from sketch2fashion.classifier.model import save_classifier
from sketch2fashion.classifier.registry import MODEL_NAME, load_version, log_and_register
from sketch2fashion.classifier.training import (
    evaluate_classifier,
    evaluate_real_doodles,
    load_labelled,
    train_classifier,
)
from sketch2fashion.colorizer.augment import augment_from_params
from sketch2fashion.data.manifest import ManifestError
from sketch2fashion.imaging.io import write_bytes_atomic
from sketch2fashion.params import ParamsError, categories, load_params, require, section
from sketch2fashion.registry.evidence import classifier_evidence
from sketch2fashion.registry.gate_rules import CLASSIFIER, gate_rule
from sketch2fashion.registry.gatekeeper import gate_version
from sketch2fashion.registry.tracking import configure, get_or_create_experiment, git_commit

KEYS = ("image_size", "load_size", "width", "blocks", "dim", "epochs", "batch_size", "lr", "weight_decay",
        "doodle_share", "template_share", "real_doodles", "seed", "threads")
"""params.yaml `classifier:` keys, every one required (params.yaml holds their values)."""
TRAIN_ARGS = ("image_size", "width", "blocks", "dim", "epochs", "batch_size", "lr", "weight_decay", "seed",
              "doodle_share", "template_share")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--data-dir", default="data", type=Path)
    parser.add_argument("--out", default=Path("models/classifier.pt"), type=Path)
    parser.add_argument("--report", default=Path("reports/classifier.json"), type=Path)
    parser.add_argument("--decision", default=Path("reports/promote/sketch-classifier.json"), type=Path,
                        help="the champion gate's report (default: %(default)s)")
    return parser.parse_args(argv)


def settings_from(params: dict, source: str = "params.yaml") -> dict:
    """params.yaml `classifier:`: every key required, no others."""
    return section(params, "classifier", KEYS, source)


def run(args: argparse.Namespace) -> dict:
    params = load_params(args.params)
    settings = settings_from(params, args.params)
    rule = gate_rule(params, CLASSIFIER, source=args.params)
    names = categories(params)
    torch.set_num_threads(int(settings["threads"]))
    hint_params = require(params, "hints", args.params)
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
            augment=augment_from_params(require(params, "train.augment", args.params)),
            **{k: settings[k] for k in TRAIN_ARGS})
        metrics = evaluate_classifier(classifier, val_set, seed=int(settings["seed"]), hint_params=hint_params)
        doodles = evaluate_classifier(classifier, val_set, seed=int(settings["seed"]), hint_params=hint_params,
                                      doodles=True)
        real = evaluate_real_doodles(classifier, settings["real_doodles"], int(settings["seed"]))
        mlflow.log_metric("val_accuracy", metrics["accuracy"])
        mlflow.log_metric("val_doodle_accuracy", doodles["accuracy"])
        if real is not None:
            mlflow.log_metric("real_doodle_accuracy", real["accuracy"])
            mlflow.log_dict(real, "real_doodles.json")
        mlflow.log_metrics({f"val_accuracy_{c}": a for c, a in metrics["per_category"].items() if a is not None})
        mlflow.log_dict(metrics["confusion_matrix"], "confusion_matrix.json")
        save_classifier(args.out, classifier, {"classifier": settings, "val_accuracy": metrics["accuracy"]})
        version = log_and_register(args.out, metrics["accuracy"], client,
                                   {"categories": ",".join(names), "git_commit": git_commit(),
                                    "doodle_accuracy": repr(doodles["accuracy"])})
        outcome = gate_version(client, MODEL_NAME, version.version, rule,
                               lambda mv: classifier_evidence(load_version(client, mv), args.data_dir, params),
                               extra={"run_id": active.info.run_id,
                                      "val": {"accuracy": metrics["accuracy"], "doodle_accuracy": doodles["accuracy"],
                                              "n": metrics["n"]}})
        mlflow.log_metrics({f"test_{k}": v for k, v in outcome.candidate_test.items() if v is not None})
        report = {"accuracy": round(metrics["accuracy"], 4),
                  "per_category": {c: None if a is None else round(a, 4) for c, a in metrics["per_category"].items()},
                  "confusion_matrix": metrics["confusion_matrix"], "n_val": metrics["n"],
                  "doodle_accuracy": round(doodles["accuracy"], 4),
                  "doodle_per_category": {c: None if a is None else round(a, 4)
                                          for c, a in doodles["per_category"].items()},
                  "doodle_confusion_matrix": doodles["confusion_matrix"],
                  "real_doodle_accuracy": None if real is None else round(real["accuracy"], 4),
                  "real_doodles": real,
                  "n_train": len(train_set.products), "epochs": len(history),
                  "final_loss": round(float(history[-1]["loss"]), 4),
                  "run_id": active.info.run_id, "registered_version": int(version.version),
                  "test_accuracy": outcome.candidate_test.get("accuracy"), "n_test": outcome.n_test,
                  "champion": outcome.promoted, "promotion_reason": outcome.decision.reason}
    write_bytes_atomic(args.decision, (json.dumps(outcome.to_dict(), indent=2) + "\n").encode("utf-8"))
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        report = run(args)
    except (ParamsError, ManifestError, FileNotFoundError, ValueError) as exc:
        print(f"train_classifier: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
