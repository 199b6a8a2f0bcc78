"""DVC stage `promote@<category>`: register the trained candidate and apply the champion gate.

    python training/promote.py --category top [--params params.yaml]
        [--candidate reports/train/top.json] [--out reports/promote/top.json]

The candidate JSON comes from the train stage: at least {"run_id", "ssim", "epoch",
"artifact_path"}, optionally "model_uri" (the exact `models:/m-...` of the logged model). The
model is registered as a version of `colorizer-<category>` and becomes the `champion` only if
its SSIM beats the champion's by `promote.min_gain` (params.yaml), or its hint colour error
("hint_delta_e" of the evaluate stage) beats the champion's by `promote.hint_gain` while its SSIM
stays within `promote.max_ssim_loss`. A champion registered before hint colour error was tracked
is measured on val first (and tagged), so the two compare on the same sketches. The decision is
written as a DVC metrics file. A rejected candidate is a normal outcome (exit 0); only errors exit 1.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


from mlflow.exceptions import MlflowException

from sketch2fashion.imaging.io import write_bytes_atomic
from sketch2fashion.params import ParamsError, categories, load_params
from sketch2fashion.registry.promotion import (
    HINT_TAG,
    HintRule,
    PromotionError,
    champion,
    promote_if_better,
    register_version,
    registered_model_name,
)
from sketch2fashion.registry.tracking import configure, tracking_uri

REQUIRED_CANDIDATE_KEYS = ("run_id", "ssim", "epoch", "artifact_path")
LINEAGE_TAGS = ("git_commit", "dvc_data_hash")


class StageError(RuntimeError):
    """A problem the user can fix; the message names the file and the fix."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Register a category's trained colorizer in MLflow and make it the champion "
                    "if its validation SSIM beats the current champion by promote.min_gain.")
    parser.add_argument("--category", required=True, help="Garment category, e.g. top.")
    parser.add_argument("--params", default="params.yaml", help="Params file (default: %(default)s).")
    parser.add_argument("--candidate", default=None,
                        help="Train stage result JSON (default: reports/train/<category>.json).")
    parser.add_argument("--out", default=None,
                        help="Decision report JSON (default: reports/promote/<category>.json).")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    candidate_path = Path(args.candidate or f"reports/train/{args.category}.json")
    out = Path(args.out or f"reports/promote/{args.category}.json")
    try:
        min_gain = _min_gain(args.params, args.category)
        params = load_params(args.params)
        candidate = read_candidate(candidate_path, args.category)
        report = run_gate(args.category, candidate, min_gain, hint_rule=_hint_rule(params),
                          measure=lambda client, version: measure_hint_delta_e(client, args.category, version, params))
    except (StageError, ParamsError, PromotionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except MlflowException as exc:
        print(f"error: MLflow ({tracking_uri()}): {_first_line(exc.message)}", file=sys.stderr)
        return 1
    write_bytes_atomic(out, (json.dumps(report, indent=2) + "\n").encode("utf-8"))
    verdict = "promoted to champion" if report["promoted"] else "kept as challenger"
    print(f"promote@{args.category}: {report['model']} v{report['version']} {verdict} "
          f"({report['reason']}) -> {out}")
    return 0


def run_gate(category: str, candidate: dict[str, Any], min_gain: float, *, hint_rule: HintRule | None = None,
             measure: Any = None) -> dict[str, Any]:
    """Register the candidate (idempotent per run) and apply the gate; returns the report."""
    client = configure(Path.cwd())
    run_id = str(candidate["run_id"])
    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        raise StageError(f"run {run_id} from the candidate file is not in the MLflow store "
                         f"{tracking_uri()}; was it trained against another MLFLOW_TRACKING_URI?") from exc
    lineage = {key: run.data.tags[key] for key in LINEAGE_TAGS if key in run.data.tags}
    if candidate.get(HINT_TAG) is not None:
        lineage[HINT_TAG] = repr(float(candidate[HINT_TAG]))
    version = register_version(run_id, category, artifact_path=str(candidate["artifact_path"]),
                               ssim=float(candidate["ssim"]), epoch=int(candidate["epoch"]),
                               extra_tags=lineage, model_uri=candidate.get("model_uri"),
                               export_format=candidate.get("format"))
    current = champion(client, category)
    if (hint_rule is not None and measure is not None and current is not None
            and current.version != version.version and HINT_TAG not in current.tags and HINT_TAG in lineage):
        value = measure(client, current)
        client.set_model_version_tag(registered_model_name(category), current.version, HINT_TAG, repr(value))
        print(f"promote@{category}: champion v{current.version} had no {HINT_TAG}; measured on val: {value:.2f}")
    decision = promote_if_better(client, category, version.version, min_gain=min_gain, hint_rule=hint_rule)
    current = champion(client, category)
    return {
        **decision.to_dict(),
        "model": registered_model_name(category),
        "run_id": run_id,
        "epoch": int(candidate["epoch"]),
        "min_gain": min_gain,
        "champion_version": int(current.version) if current is not None else None,
    }


def read_candidate(path: Path, category: str) -> dict[str, Any]:
    """The train stage's result, checked for the keys the gate needs."""
    if not path.is_file():
        raise StageError(f"{path}: no such candidate file; run the train stage first "
                         f"(dvc repro train@{category})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StageError(f"{path}: not a readable JSON file ({exc}); re-run the train stage") from exc
    if not isinstance(data, dict):
        raise StageError(f"{path}: expected a JSON object with {', '.join(REQUIRED_CANDIDATE_KEYS)}")
    missing = [key for key in REQUIRED_CANDIDATE_KEYS if data.get(key) in (None, "")]
    if missing:
        raise StageError(f"{path}: missing {', '.join(missing)}; the train stage must write "
                         f"{', '.join(REQUIRED_CANDIDATE_KEYS)}")
    if data.get("category", category) != category:
        raise StageError(f"{path}: candidate is for category {data['category']!r}, not {category!r}")
    try:
        float(data["ssim"]), int(data["epoch"])
    except (TypeError, ValueError) as exc:
        raise StageError(f"{path}: ssim must be a number and epoch an integer ({exc})") from exc
    return data


def _min_gain(params_path: str, category: str) -> float:
    params = load_params(params_path)
    if category not in categories(params):
        raise ParamsError(f"{params_path}: category {category!r} is not in 'categories'")
    section = params.get("promote")
    if not isinstance(section, dict) or "min_gain" not in section:
        raise ParamsError(f"{params_path}: no promote.min_gain; add `promote: {{min_gain: 0.005}}`")
    try:
        value = float(section["min_gain"])
    except (TypeError, ValueError) as exc:
        raise ParamsError(f"{params_path}: promote.min_gain must be a number") from exc
    if value < 0:
        raise ParamsError(f"{params_path}: promote.min_gain is {value}; use 0 or more")
    return value


def measure_hint_delta_e(client: Any, category: str, version: Any, params: dict[str, Any]) -> float:
    """Hint colour error of a registered version on the val split, as the evaluate stage measures it."""
    import mlflow

    from sketch2fashion.colorizer import ColorizerDataset, evaluate_generator
    from sketch2fashion.registry.colorizer_model import PyfuncGenerator

    model = mlflow.pyfunc.load_model(f"models:/{registered_model_name(category)}/{version.version}")
    val_set = ColorizerDataset(Path("data"), category, "val", size=int(params["image"]["size"]), train=False,
                               hint_params=params.get("hints") or {},
                               seed=int((params.get("train") or {}).get("seed", 0)))
    scores = evaluate_generator(PyfuncGenerator(model), val_set, device="cpu", autocast=False)
    if "hint_delta_e" not in scores:
        raise StageError(f"no val sketch of {category} has hints; cannot compare hint colour error")
    return float(scores["hint_delta_e"])


def _hint_rule(params: dict[str, Any]) -> HintRule | None:
    section = params.get("promote") or {}
    if section.get("hint_gain") is None:
        return None
    return HintRule(min_gain=float(section["hint_gain"]), max_ssim_loss=float(section.get("max_ssim_loss", 0.0)))


def _first_line(text: str) -> str:
    return (str(text).strip().splitlines() or [""])[0]


if __name__ == "__main__":
    sys.exit(main())
