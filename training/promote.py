"""DVC stage `promote@<category>`: register the evaluated colorizer and put it through the champion gate.

    python training/promote.py --category top [--params params.yaml] [--data-dir data]
        [--candidate reports/eval/top.json] [--out reports/promote/top.json]

The candidate JSON comes from the evaluate stage: at least {"run_id", "ssim", "epoch",
"artifact_path"}, optionally "model_uri" (the exact `models:/m-...` of the logged model) and
"format". The model is registered as a version of `colorizer-<category>`; then it and the
current champion are scored on the same test sketches and doodles (registry/evidence.py) and
the gate of params.yaml `promote` decides (registry/gate.py: a 90% paired bootstrap interval of
the gain on test SSIM, or on hint colour error, must clear its margin; significantly worse test
doodles refuse). Val chose the candidate's epoch; test judges it. The decision, both models'
test scores, the intervals, and the candidate's val scores beside them land in the version's
tags and in the DVC metrics file. A rejected candidate is a normal outcome (exit 0); only
errors exit 1.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from mlflow.exceptions import MlflowException

from sketch2fashion.imaging.io import write_bytes_atomic
from sketch2fashion.params import ParamsError, categories, load_params, require
from sketch2fashion.registry.gate_rules import COLORIZER, gate_rule
from sketch2fashion.registry.promotion import (
    PromotionError,
    champion,
    is_reexport,
    register_version,
    registered_model_name,
)
from sketch2fashion.registry.tracking import configure, tracking_uri

REQUIRED_CANDIDATE_KEYS = ("run_id", "ssim", "epoch", "artifact_path")
LINEAGE_TAGS = ("git_commit", "dvc_data_hash")
VAL_SCORES = ("ssim", "psnr", "l1", "hint_delta_e", "body_delta_e")
"""The candidate's val scores (evaluate stage), tagged `val_<score>` and reported beside its test scores."""


class StageError(RuntimeError):
    """A problem the user can fix; the message names the file and the fix."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Register a category's evaluated colorizer in MLflow and make it the champion "
                    "only if it is significantly better than the current one on the test split.")
    parser.add_argument("--category", required=True, help="Garment category, e.g. top.")
    parser.add_argument("--params", default="params.yaml", help="Params file (default: %(default)s).")
    parser.add_argument("--data-dir", default="data", type=Path, help="Data folder (default: %(default)s).")
    parser.add_argument("--candidate", default=None,
                        help="Evaluate stage result JSON (default: reports/eval/<category>.json).")
    parser.add_argument("--out", default=None,
                        help="Decision report JSON (default: reports/promote/<category>.json).")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    candidate_path = Path(args.candidate or f"reports/eval/{args.category}.json")
    out = Path(args.out or f"reports/promote/{args.category}.json")
    try:
        params = load_params(args.params)
        if args.category not in categories(params):
            raise ParamsError(f"{args.params}: category {args.category!r} is not in 'categories'")
        gate_rule(params, COLORIZER, source=args.params)  # a params problem fails before any work
        candidate = read_candidate(candidate_path, args.category)
        report = run_gate(args.category, candidate, params, args.data_dir, source=args.params)
    except (StageError, ParamsError, PromotionError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)  # e.g. no usable test rows: re-run split with a test split
        return 1
    except MlflowException as exc:
        print(f"error: MLflow ({tracking_uri()}): {_first_line(exc.message)}", file=sys.stderr)
        return 1
    write_bytes_atomic(out, (json.dumps(report, indent=2) + "\n").encode("utf-8"))
    verdict = "promoted to champion" if report["promoted"] else "kept as challenger"
    print(f"promote@{args.category}: {report['model']} v{report['version']} {verdict} "
          f"({report['reason']}) -> {out}")
    return 0


def run_gate(category: str, candidate: dict[str, Any], params: dict[str, Any], data_dir: Path, *,
             source: str = "params.yaml") -> dict[str, Any]:
    """Register the candidate (idempotent per run and format), gate it on the test split; the report."""
    import mlflow

    from sketch2fashion.registry.colorizer_model import PyfuncGenerator
    from sketch2fashion.registry.evidence import colorizer_evidence
    from sketch2fashion.registry.gatekeeper import gate_version

    client = configure(Path.cwd())
    run_id = str(candidate["run_id"])
    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        raise StageError(f"run {run_id} from the candidate file is not in the MLflow store "
                         f"{tracking_uri()}; was it trained against another MLFLOW_TRACKING_URI?") from exc
    lineage = {key: run.data.tags[key] for key in LINEAGE_TAGS if key in run.data.tags}
    lineage.update({f"val_{key}": repr(float(candidate[key])) for key in VAL_SCORES if candidate.get(key) is not None})
    version = register_version(run_id, category, artifact_path=str(candidate["artifact_path"]),
                               ssim=float(candidate["ssim"]), epoch=int(candidate["epoch"]),
                               extra_tags=lineage, model_uri=candidate.get("model_uri"),
                               export_format=candidate.get("format"))
    name = registered_model_name(category)
    rule = gate_rule(params, COLORIZER, reexport=is_reexport(version, champion(client, category)), source=source)

    def score(model_version: Any):
        model = mlflow.pyfunc.load_model(f"models:/{name}/{model_version.version}")
        return colorizer_evidence(PyfuncGenerator(model), data_dir, category, params)

    outcome = gate_version(client, name, version.version, rule, score, extra={
        "category": category, "run_id": run_id, "epoch": int(candidate["epoch"]),
        "min_gain": float(require(params, "promote.colorizer.min_gain", source)),
        "val": {key: candidate[key] for key in (*VAL_SCORES, "n") if candidate.get(key) is not None},
        "val_doodle": candidate.get("doodle")})
    return outcome.to_dict()


def read_candidate(path: Path, category: str) -> dict[str, Any]:
    """The evaluate stage's result, checked for the keys the gate needs."""
    if not path.is_file():
        raise StageError(f"{path}: no such candidate file; run the evaluate stage first "
                         f"(dvc repro evaluate@{category})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StageError(f"{path}: not a readable JSON file ({exc}); re-run the evaluate stage") from exc
    if not isinstance(data, dict):
        raise StageError(f"{path}: expected a JSON object with {', '.join(REQUIRED_CANDIDATE_KEYS)}")
    missing = [key for key in REQUIRED_CANDIDATE_KEYS if data.get(key) in (None, "")]
    if missing:
        raise StageError(f"{path}: missing {', '.join(missing)}; the evaluate stage must write "
                         f"{', '.join(REQUIRED_CANDIDATE_KEYS)}")
    if data.get("category", category) != category:
        raise StageError(f"{path}: candidate is for category {data['category']!r}, not {category!r}")
    try:
        float(data["ssim"]), int(data["epoch"])
    except (TypeError, ValueError) as exc:
        raise StageError(f"{path}: ssim must be a number and epoch an integer ({exc})") from exc
    return data


def _first_line(text: str) -> str:
    return (str(text).strip().splitlines() or [""])[0]


if __name__ == "__main__":
    sys.exit(main())
