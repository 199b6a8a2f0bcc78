"""What each model kind is judged on: params.yaml `promote` -> a `GateRule` (registry/gate.py).

- colorizer: test SSIM better by more than `min_gain`, or hint colour error (Delta E at the hinted
  pixels) lower by more than `hint_gain` while SSIM loses at most `max_ssim_loss`; refused when
  significantly worse on the test doodles (SSIM, or the colour error over the garment body):
  shoppers draw doodles, and a model that gets worse on them must not ship.
- classifier: test accuracy (per sketch) better by more than `min_gain`; refused when its doodle
  accuracy is significantly worse (category=auto mostly sees doodles).
- encoder: test MRR (per query: 1 / rank of the product's photo) better by more than `min_gain`;
  refused when the doodle queries' MRR is significantly worse.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sketch2fashion.params import ParamsError, require, section
from sketch2fashion.registry.gate import GateRule, Guard, Metric, Route

COLORIZER = "colorizer"
CLASSIFIER = "classifier"
ENCODER = "encoder"
KINDS = (COLORIZER, CLASSIFIER, ENCODER)
KEYS = {COLORIZER: ("min_gain", "hint_gain", "max_ssim_loss", "doodle_max_ssim_loss", "doodle_max_delta_e_loss"),
        CLASSIFIER: ("min_gain", "doodle_max_loss"),
        ENCODER: ("min_gain", "doodle_max_loss")}
REEXPORT_SSIM_TOLERANCE = 0.005
"""How much test SSIM a re-export of the champion's own weights (same run and epoch, a new serving
format) may lose: bf16 kernels round differently, and the weights already passed the gate."""

COLORIZER_METRICS = (Metric("ssim", True, "test SSIM"), Metric("hint_delta_e", False, "hint Delta E"),
                     Metric("body_delta_e", False, "body Delta E"), Metric("doodle_ssim", True, "doodle SSIM"),
                     Metric("doodle_body_delta_e", False, "doodle body Delta E"))
CLASSIFIER_METRICS = (Metric("accuracy", True, "test accuracy"), Metric("doodle_accuracy", True, "doodle accuracy"))
ENCODER_METRICS = (Metric("reciprocal_rank", True, "test MRR"), Metric("doodle_reciprocal_rank", True, "doodle MRR"))


def gate_rule(params: Mapping[str, Any], kind: str, *, reexport: bool = False,
              source: str = "params.yaml") -> GateRule:
    """The rule for `kind` from params.yaml `promote` (every key required). `reexport`: the
    candidate is the champion's own weights in a new serving format (colorizers only)."""
    if kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}; one of {KINDS}")
    shared = {"confidence": float(require(params, "promote.confidence", source)),
              "resamples": int(require(params, "promote.resamples", source)),
              "seed": int(require(params, "promote.seed", source))}
    raw = section(params, f"promote.{kind}", KEYS[kind], source)
    try:
        values = {k: float(v) for k, v in raw.items()}
    except (TypeError, ValueError) as exc:
        raise ParamsError(f"{source}: promote.{kind}: every value must be a number ({exc})") from exc
    negative = sorted(k for k, v in values.items() if v < 0)
    if negative:
        raise ParamsError(f"{source}: promote.{kind}: {negative} must be 0 or more")
    try:
        if kind == COLORIZER:
            routes = [Route("ssim", "ssim", values["min_gain"]),
                      Route("hint colours", "hint_delta_e", values["hint_gain"],
                            keep={"ssim": values["max_ssim_loss"]})]
            if reexport:
                routes.insert(0, Route("re-export of the champion's weights", "ssim", -REEXPORT_SSIM_TOLERANCE))
            return GateRule(kind, COLORIZER_METRICS, tuple(routes),
                            (Guard("doodle_ssim", values["doodle_max_ssim_loss"]),
                             Guard("doodle_body_delta_e", values["doodle_max_delta_e_loss"])), **shared)
        metrics = CLASSIFIER_METRICS if kind == CLASSIFIER else ENCODER_METRICS
        main, doodle = metrics
        return GateRule(kind, metrics, (Route(main.name, main.name, values["min_gain"]),),
                        (Guard(doodle.name, values["doodle_max_loss"]),), **shared)
    except ValueError as exc:
        raise ParamsError(f"{source}: promote: {exc}") from exc
