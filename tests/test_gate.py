"""The champion gate: paired bootstrap intervals, the decision rule, and its record in a real registry.

The statistics are checked against what they promise (a rerun never promotes, noise is refused
at about the stated rate, a real gain is promoted, a doodle regression is refused); the
registry side runs on a real SQLite MLflow store with registered versions whose per-item test
scores are given, so each decision is known in advance.
"""
from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pytest
import yaml

from mlflow_sandbox import isolated_mlflow
from sketch2fashion.params import ParamsError, load_params
from sketch2fashion.registry.aliases import aliased_version
from sketch2fashion.registry.gate import Evidence, GateRule, Guard, Metric, Route, judge, paired_interval
from sketch2fashion.registry.gate_rules import CLASSIFIER, COLORIZER, ENCODER, gate_rule
from sketch2fashion.registry.gatekeeper import gate_version
from sketch2fashion.registry.tracking import configure, get_or_create_experiment

ROOT = Path(__file__).resolve().parents[1]
SSIM = Metric("ssim", True)
DELTA_E = Metric("delta_e", False)
RULE = GateRule("test", (SSIM, Metric("doodle_ssim", True), DELTA_E),
                (Route("ssim", "ssim", 0.005), Route("colours", "delta_e", 3.0, keep={"ssim": 0.01})),
                (Guard("doodle_ssim", 0.0),), confidence=0.9, resamples=4000, seed=0)
IDS = tuple(f"item-{i:03d}" for i in range(40))


def evidence(ssim, doodle=None, delta_e=None) -> Evidence:
    n = len(IDS)
    return Evidence(IDS, {"ssim": np.asarray(ssim, float),
                          "doodle_ssim": np.asarray(doodle if doodle is not None else np.full(n, 0.5), float),
                          "delta_e": np.asarray(delta_e if delta_e is not None else np.full(n, 20.0), float)})


def champion_scores(seed: int = 0) -> np.ndarray:
    """Per-image SSIM of a champion: easy and hard sketches differ far more than models do."""
    return np.random.default_rng(seed).uniform(0.55, 0.9, len(IDS))


# --- the interval ---------------------------------------------------------------------------------

def test_identical_scores_give_a_zero_interval_so_a_rerun_never_promotes():
    scores = champion_scores()
    interval = paired_interval(SSIM, scores, scores.copy(), confidence=0.9, resamples=2000, seed=0)
    assert (interval.gain, interval.low, interval.high) == (0.0, 0.0, 0.0)
    decision = judge(RULE, evidence(scores), evidence(scores.copy()))
    assert not decision.promoted and decision.route is None
    zero_margin = GateRule("t", (SSIM,), (Route("ssim", "ssim", 0.0),), resamples=1000)
    assert not judge(zero_margin, evidence(scores), evidence(scores)).promoted  # strictly above min_gain


def test_interval_is_oriented_and_centred_on_the_mean_paired_gain():
    champ = champion_scores()
    shifted = paired_interval(SSIM, champ + 0.02, champ, confidence=0.9, resamples=2000, seed=0)
    assert shifted.low == pytest.approx(0.02) and shifted.high == pytest.approx(0.02)  # pairing removes item spread
    lower = paired_interval(DELTA_E, champ * 10 - 1.0, champ * 10, confidence=0.9, resamples=2000, seed=0)
    assert lower.gain == pytest.approx(1.0) and lower.low > 0  # lower Delta E is a positive gain
    noisy = champ + np.random.default_rng(5).normal(0.01, 0.02, len(champ))
    interval = paired_interval(SSIM, noisy, champ, confidence=0.9, resamples=4000, seed=0)
    diff = noisy - champ
    half = 1.645 * diff.std(ddof=1) / np.sqrt(len(diff))  # the normal approximation of the same interval
    assert interval.low < diff.mean() < interval.high
    assert interval.high - interval.low == pytest.approx(2 * half, rel=0.15)
    again = paired_interval(SSIM, noisy, champ, confidence=0.9, resamples=4000, seed=0)
    assert again == interval  # seeded: the same scores always give the same decision


def test_items_without_a_score_are_left_out_of_the_pairs():
    cand, champ = np.array([0.5, np.nan, 0.7, 0.9]), np.array([0.4, 0.6, np.nan, 0.8])
    interval = paired_interval(SSIM, cand, champ, confidence=0.9, resamples=500, seed=0)
    assert interval.n == 2 and interval.gain == pytest.approx(0.1)
    with pytest.raises(ValueError, match="no test item"):
        paired_interval(SSIM, np.array([np.nan]), np.array([0.5]), confidence=0.9, resamples=500, seed=0)


@pytest.mark.parametrize("true_gain, most", [(0.0, 0.10), (0.005, 0.10)])
def test_noise_is_promoted_at_most_about_as_often_as_the_confidence_allows(true_gain, most):
    """Candidates whose true gain is at most min_gain: the lower bound clears it only by chance,
    about 5% of the time for a 90% two-sided interval (the percentile bootstrap runs a little
    over at n=30, hence the 10% bound). The old rule (mean gain >= min_gain) promoted half of them."""
    rule = GateRule("t", (SSIM,), (Route("ssim", "ssim", 0.005),), resamples=1000, seed=0)
    rng = np.random.default_rng(11)
    ids = tuple(str(i) for i in range(30))
    promoted = naive = 0
    trials = 300
    for _ in range(trials):
        champ = rng.uniform(0.5, 0.9, 30)
        cand = champ + rng.normal(true_gain, 0.02, 30)  # checkpoints differ by ~0.02 SSIM per image
        promoted += judge(rule, Evidence(ids, {"ssim": cand}), Evidence(ids, {"ssim": champ})).promoted
        naive += (cand - champ).mean() >= 0.005
    assert promoted / trials <= most, promoted / trials
    if true_gain == 0.005:
        assert naive / trials > 0.35  # what a gate on the mean alone lets through


# --- the rule -------------------------------------------------------------------------------------

def test_a_clear_gain_is_promoted_and_a_small_noisy_one_is_not():
    champ = champion_scores()
    rng = np.random.default_rng(3)
    clear = judge(RULE, evidence(champ + rng.normal(0.03, 0.01, len(champ))), evidence(champ))
    assert clear.promoted and clear.route == "ssim" and "lower bound above min_gain 0.005" in clear.reason
    assert clear.intervals["ssim"].low > 0.005
    noise = rng.normal(0.0, 0.03, len(champ))
    noisy = champ + 0.008 + (noise - noise.mean())  # mean gain 0.008 > min_gain, but noise
    decision = judge(RULE, evidence(noisy), evidence(champ))
    assert (noisy - champ).mean() > 0.005 and not decision.promoted
    assert "no significant improvement" in decision.reason and "ssim" in decision.reason


def test_a_candidate_significantly_worse_on_doodles_is_refused_whatever_else_it_gains():
    champ = champion_scores()
    doodles = np.random.default_rng(4).uniform(0.4, 0.7, len(IDS))
    worse_doodles = doodles - np.random.default_rng(5).uniform(0.01, 0.05, len(IDS))
    decision = judge(RULE, evidence(champ + 0.05, doodle=worse_doodles), evidence(champ, doodle=doodles))
    assert not decision.promoted and decision.failed_guards == ("doodle_ssim",)
    assert "significantly worse on doodle_ssim" in decision.reason
    # Doodles a little worse on some items and better on others (not significantly): promoted.
    mixed = doodles + np.random.default_rng(6).normal(0.0, 0.03, len(IDS))
    assert judge(RULE, evidence(champ + 0.05, doodle=mixed), evidence(champ, doodle=doodles)).promoted


def test_the_colour_route_needs_a_clear_delta_e_gain_and_ssim_kept():
    champ = champion_scores()
    better_colours = np.full(len(IDS), 12.0)
    kept = judge(RULE, evidence(champ - 0.002, delta_e=better_colours), evidence(champ))
    assert kept.promoted and kept.route == "colours"
    lost = judge(RULE, evidence(champ - 0.03, delta_e=better_colours), evidence(champ))
    assert not lost.promoted and "ssim may lose more than 0.01" in lost.reason
    small = judge(RULE, evidence(champ, delta_e=np.full(len(IDS), 18.0)), evidence(champ))
    assert not small.promoted  # 2 Delta E better, the route asks for more than 3


def test_scores_of_different_test_items_are_not_compared():
    other = Evidence(tuple(reversed(IDS)), {"ssim": champion_scores()})
    with pytest.raises(ValueError, match="different test items"):
        judge(RULE, evidence(champion_scores()), other)


def test_rules_come_from_params_and_refuse_bad_values(project_root):
    params = load_params(project_root / "params.yaml")
    colorizer = gate_rule(params, COLORIZER)
    assert [r.metric for r in colorizer.routes] == ["ssim", "hint_delta_e"]
    assert {g.metric for g in colorizer.guards} == {"doodle_ssim", "doodle_body_delta_e"}
    assert colorizer.routes[0].min_gain == params["promote"]["colorizer"]["min_gain"]
    assert colorizer.confidence == 0.9
    assert gate_rule(params, COLORIZER, reexport=True).routes[0].min_gain < 0
    assert gate_rule(params, CLASSIFIER).routes[0].metric == "accuracy"
    assert gate_rule(params, ENCODER).guards[0].metric == "doodle_reciprocal_rank"
    broken = json.loads(json.dumps(params))
    del broken["promote"]["encoder"]["min_gain"]
    with pytest.raises(ParamsError, match="missing promote.encoder.min_gain"):
        gate_rule(broken, ENCODER)
    broken = json.loads(json.dumps(params))
    broken["promote"]["classifier"]["min_gian"] = 0.1
    with pytest.raises(ParamsError, match="unknown key"):
        gate_rule(broken, CLASSIFIER)


# --- recorded in a real registry ------------------------------------------------------------------

@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    root = tmp_path_factory.mktemp("gate-registry")
    with isolated_mlflow():
        client = configure(root)
        experiment = get_or_create_experiment("gate-test")
        model = root / "model.txt"
        model.write_text("weights")
        runs = []
        for _ in range(4):
            with mlflow.start_run(experiment_id=experiment) as run:
                mlflow.log_artifact(str(model), artifact_path="m")
            runs.append(run)
        yield client, runs


def new_version(client, runs, name: str, index: int) -> int:
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(name)
    except MlflowException:
        pass
    run = runs[index]
    return int(client.create_model_version(name, f"{run.info.artifact_uri}/m", run_id=run.info.run_id).version)


def test_decisions_are_recorded_on_the_versions_and_move_the_aliases(registry):
    client, runs = registry
    name = "gated-model"
    champ = champion_scores()
    scores = {}

    def score(version):
        return evidence(scores[int(version.version)])

    v1 = new_version(client, runs, name, 0)
    scores[v1] = champ
    first = gate_version(client, name, v1, RULE, score)
    assert first.promoted and first.decision.reason == "no champion yet" and first.champion_version == v1

    v2 = new_version(client, runs, name, 1)
    scores[v2] = champ.copy()  # a rerun: the same scores
    refused = gate_version(client, name, v2, RULE, score)
    assert not refused.promoted and refused.champion_version == v1 and refused.previous_champion == v1
    tags = client.get_model_version(name, str(v2)).tags
    assert tags["promotion"] == "rejected" and "no significant improvement" in tags["promotion_reason"]
    assert json.loads(tags["gate_ssim"]) == {"metric": "ssim", "candidate": pytest.approx(champ.mean(), abs=1e-6),
                                             "champion": pytest.approx(champ.mean(), abs=1e-6),
                                             "gain": 0.0, "low": 0.0, "high": 0.0, "n": len(IDS)}
    assert tags["gate_split"] == "test" and tags["gate_champion_version"] == str(v1)
    assert float(tags["test_ssim"]) == pytest.approx(champ.mean(), abs=1e-6)
    assert client.get_registered_model(name).aliases == {"champion": v1}

    v3 = new_version(client, runs, name, 2)
    scores[v3] = champ + 0.03
    promoted = gate_version(client, name, v3, RULE, score, extra={"run_id": "r"})
    assert promoted.promoted and promoted.champion_version == v3 and promoted.previous_champion == v1
    assert client.get_registered_model(name).aliases == {"champion": v3, "previous": v1}
    report = promoted.to_dict()
    assert report["intervals"]["ssim"]["low"] == pytest.approx(0.03) and report["split"] == "test"
    assert report["test"]["candidate"]["ssim"] == pytest.approx(champ.mean() + 0.03, abs=1e-6)
    assert report["gate"]["confidence"] == 0.9 and report["run_id"] == "r" and report["n_test"] == len(IDS)
    assert client.get_model_version(name, str(v3)).tags["promotion"] == "promoted"
    again = gate_version(client, name, v3, RULE, score)
    assert again.promoted and again.decision.reason == "already the champion"
    assert int(aliased_version(client, name, "champion").version) == v3


def test_repo_params_promote_section_is_complete(project_root):
    raw = yaml.safe_load((project_root / "params.yaml").read_text())
    for kind in (COLORIZER, CLASSIFIER, ENCODER):
        gate_rule(raw, kind)  # every key there, none unknown
