"""The DVC pipeline on a real scratch git+DVC repo with the tiny profile (real `dvc`, no mocks).

Besides the plumbing, the champions must clear the quality floors of sketch2fashion/quality.py
on the test split, and the champion gate of every model kind is driven through the stage
commands: a rerun and a worse candidate are refused (the served model stays), a clearly better
one is promoted and served. Those tests run last: they move the registry's aliases.
"""
from __future__ import annotations

import csv
import hashlib
import json
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import numpy as np
import torch

from mlflow_sandbox import isolated_mlflow
from sketch2fashion.models.networks import build_generator
from sketch2fashion.params import deep_merge, load_params, with_profile
from sketch2fashion.pipeline import changed_stages, make_scratch_project, run_dvc, tool_env
from sketch2fashion.quality import (
    chance_mrr, classifier_problems, colorizer_problems, encoder_problems, pipeline_problems, search_problems,
)
from sketch2fashion.registry.evidence import colorizer_evidence
from waiting import HANG_SECONDS, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, project_root):
    params = with_profile(load_params(project_root / "params.yaml"), project_root / "profiles" / "tiny.yaml")
    project = make_scratch_project(project_root, tmp_path_factory.mktemp("pipeline") / "proj", params)
    first = run_dvc(project, "repro")
    return project, params, first


def _per_category(params, prefix):
    return {f"{prefix}@{c}" for c in params["categories"]}


def s2f_json(project: Path, *args: str):
    proc = subprocess.run([sys.executable, "-m", "sketch2fashion.cli", *args], cwd=project, env=tool_env(),
                          capture_output=True, text=True, timeout=HANG_SECONDS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def perturb(module: torch.nn.Module, sigma: float = 0.2) -> None:
    """Deliberately break a model: add N(0, sigma) noise to every weight (seeded). On the tiny
    colorizer it took test SSIM from 0.54 to 0.28 (0.05 already to 0.43)."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in module.parameters():
            if param.dtype.is_floating_point and param.numel() > 1:
                param.add_(torch.randn(param.shape, generator=generator) * sigma)


def _tree_digest(folder: Path) -> dict[str, str]:
    """Hashes of the DVC-tracked files (DVC's own .gitignore files belong to git, not the remote)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".gitignore"}


def test_first_repro_runs_every_stage_and_second_runs_none(tiny):
    project, params, first = tiny
    expected = {"demo_data", "split", "train_embedder", "train_classifier", "catalog", "index", "tune_search",
                "evaluate_search"} | {
        f"{stage}@{c}" for stage in ("ingest", "edges", "train", "evaluate", "promote") for c in params["categories"]}
    assert set(first.stages_run) == expected
    second = run_dvc(project, "repro")
    assert second.stages_run == [], second.output
    assert changed_stages(project) == {}


def test_outputs_cover_every_category_and_split(tiny):
    project, params, _ = tiny
    per_cat = params["demo"]["per_category"]
    with open(project / "data" / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == per_cat * len(params["categories"])
    assert {r["split"] for r in rows} == {"train", "val", "test"}
    split = json.loads((project / "reports" / "split.json").read_text())
    for cat in params["categories"]:  # the test split tops up to min_test while train stays larger
        counts = split["categories"][cat]
        assert counts["test"] >= 1, counts
        assert counts["test"] >= params["split"]["min_test"] or counts["train"] - 1 <= counts["test"] + 1, counts
    for cat in params["categories"]:
        raws = sorted((project / "data" / "raw" / cat).glob("*.png"))
        edges = sorted((project / "data" / "edges" / cat).glob("*.png"))
        assert len(raws) == per_cat
        assert [p.name for p in edges] == [p.name for p in raws]
        assert (project / "reports" / "edges" / f"{cat}.json").is_file()


def test_dag_names_per_category_stages(tiny):
    project, params, _ = tiny
    dag = run_dvc(project, "dag").output
    for name in _per_category(params, "edges") | _per_category(params, "ingest") | {"split"}:
        assert name in dag


def test_adding_a_category_is_one_line_of_params(tiny, project_root):
    project, params, _ = tiny
    pipeline = (project_root / "dvc.yaml").read_text()
    stages = "\n".join(line for line in pipeline.splitlines() if not line.lstrip().startswith("#"))
    named = [c for c in params["categories"] if re.search(rf"\b{re.escape(c)}\b", stages)]
    assert not named, f"dvc.yaml names categories by hand: {named}"
    params_file = project / "params.yaml"
    original = params_file.read_text()
    try:
        changed = yaml.safe_load(original)
        changed["categories"].append("coat")  # one line; no alias, no stage edit
        params_file.write_text(yaml.safe_dump(changed, sort_keys=False))
        listed = run_dvc(project, "stage", "list").output
        for stage in ("ingest", "edges", "train", "evaluate", "promote"):
            assert f"{stage}@coat" in listed
        pending = changed_stages(project)
        assert {"ingest@coat", "train@coat", "promote@coat"} <= set(pending)
        assert "ingest@top" not in pending and "train@top" not in pending  # other categories untouched
    finally:
        params_file.write_text(original)
    assert changed_stages(project) == {}


def test_push_then_pull_restores_data_from_the_local_remote(tiny):
    project, _, _ = tiny
    before = _tree_digest(project / "data")
    run_dvc(project, "push")
    shutil.rmtree(project / "data")
    shutil.rmtree(project / ".dvc" / "cache")
    run_dvc(project, "pull")
    assert _tree_digest(project / "data") == before
    assert changed_stages(project) == {}


def test_changing_image_size_invalidates_exactly_ingest_and_its_descendants(tiny):
    project, params, _ = tiny
    params_file = project / "params.yaml"
    original = params_file.read_text()
    try:
        changed = yaml.safe_load(original)
        changed["image"]["size"] = params["image"]["size"] // 2
        params_file.write_text(yaml.safe_dump(changed, sort_keys=False))
        # Directly invalidated: only the stages that read image.size (not edges, split, demo); promote
        # scores candidate and champion on the test split at that size.
        assert set(changed_stages(project)) == (_per_category(params, "ingest") | _per_category(params, "train")
                                                | _per_category(params, "evaluate") | _per_category(params, "promote"))
        # What would rerun: those and everything downstream of them, never the demo data.
        dry = run_dvc(project, "repro", "--dry", "--force-downstream")
        assert set(dry.stages_run) == {"split", "train_embedder", "train_classifier", "index", "tune_search",
                                       "evaluate_search"} | {
            f"{stage}@{c}" for stage in ("ingest", "edges", "train", "evaluate", "promote") for c in params["categories"]}
    finally:
        params_file.write_text(original)
    assert changed_stages(project) == {}


def test_every_served_model_has_a_champion_judged_on_the_test_split(tiny):
    project, params, _ = tiny
    rows = {row["model"]: row for row in s2f_json(project, "models", "--json")}
    assert set(rows) == {f"colorizer-{c}" for c in params["categories"]} | {"sketch-classifier", "catalog-encoder"}
    for cat in params["categories"]:
        row = rows[f"colorizer-{cat}"]
        evaluated = json.loads((project / "reports" / "eval" / f"{cat}.json").read_text())
        decision = json.loads((project / "reports" / "promote" / f"{cat}.json").read_text())
        assert row["version"] is not None and abs(row["ssim"] - evaluated["ssim"]) < 1e-6  # val beside...
        assert row["test"] == pytest.approx(decision["test"]["candidate"]["ssim"], abs=1e-6)  # ...test
        assert decision["promoted"] and decision["split"] == "test" and decision["val"]["ssim"] == evaluated["ssim"]
    for name, kind in (("sketch-classifier", "classifier"), ("catalog-encoder", "encoder")):
        decision = json.loads((project / "reports" / "promote" / f"{name}.json").read_text())
        assert rows[name]["kind"] == kind and rows[name]["version"] == decision["champion_version"] == 1
        assert rows[name]["test"] is not None and decision["n_test"] > 0
    table = subprocess.run([sys.executable, "-m", "sketch2fashion.cli", "models"], cwd=project, env=tool_env(),
                           capture_output=True, text=True, timeout=HANG_SECONDS).stdout
    assert "sketch-classifier" in table and "catalog-encoder" in table and "colorizer-top" in table
    metrics = run_dvc(project, "metrics", "show", "--json").output
    assert "reports/eval/top.json" in metrics and "reports/promote/catalog-encoder.json" in metrics


def test_killed_training_resumes_and_finishes_with_the_same_number_of_epochs(tiny):
    project, params, _ = tiny
    longer = yaml.safe_load((project / "params.yaml").read_text())
    longer["train"].update(epochs=8, eval_every=1)
    params_file = project / "params_resume.yaml"
    params_file.write_text(yaml.safe_dump(longer, sort_keys=False))
    out, report = project / "resume_run", project / "resume_run" / "report.json"
    cmd = [sys.executable, "training/train.py", "--category", "top", "--params", str(params_file),
           "--out", str(out), "--report", str(report)]
    first_checkpoint = out / "checkpoints" / "epoch-0001.pt"
    proc = subprocess.Popen(cmd, cwd=project, env=tool_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: first_checkpoint.exists() or proc.poll() is not None, "the first checkpoint",
                   interval=0.05)
    except AssertionError:
        proc.kill()
        raise
    assert proc.poll() is None, "training ended before it could be killed; raise the epoch count"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not report.exists()
    resumed = subprocess.run(cmd + ["--resume"], cwd=project, env=tool_env(), capture_output=True,
                             text=True, timeout=HANG_SECONDS)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming after epoch" in resumed.stderr
    result = json.loads(report.read_text())
    assert result["evaluated_epochs"] == list(range(1, 9))
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow' / 'mlflow.db'}")
    steps = sorted({m.step for m in client.get_metric_history(result["run_id"], "ssim")})
    assert steps == list(range(1, 9))  # one run, every epoch logged, none past the end


def test_manual_promote_and_rollback_commands_on_the_pipeline_registry(tiny):
    project, _, _ = tiny

    def s2f(*args):
        return subprocess.run([sys.executable, "-m", "sketch2fashion.cli", *args], cwd=project,
                              env=tool_env(), capture_output=True, text=True, timeout=HANG_SECONDS)

    refused = s2f("rollback", "hat")  # only one version so far: nothing to roll back to
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "previous" in refused.stderr.lower()
    unknown = s2f("promote", "hat", "99")
    assert unknown.returncode != 0 and "99" in unknown.stderr
    again = s2f("promote", "hat", "1")
    assert again.returncode == 0, again.stderr
    champions = {row["model"]: row for row in json.loads(s2f("models", "--json").stdout)}
    assert champions["colorizer-hat"]["version"] == 1


def test_embedder_stage_reports_retrieval_metrics(tiny):
    project, _, _ = tiny
    report = json.loads((project / "reports" / "embedder.json").read_text())
    assert {"sketch_to_photo_acc@1", "acc@10", "mrr", "test_mrr", "run_id"} <= set(report)
    assert 0.0 <= report["sketch_to_photo_acc@1"] <= report["acc@10"] <= 1.0
    assert (project / "models" / "embedder.pt").stat().st_size > 0


def test_encoder_is_registered_in_mlflow_as_champion(tiny):
    project, _, _ = tiny
    report = json.loads((project / "reports" / "embedder.json").read_text())
    assert report["registered_version"] == 1 and report["champion"] is True


def test_index_stage_publishes_every_catalog_product(tiny):
    project, params, _ = tiny
    report = json.loads((project / "reports" / "index.json").read_text())
    assert report["products"] == params["demo"]["per_category"] * len(params["categories"])
    assert set(report["per_category"]) == set(params["categories"])
    current = (project / "data" / "catalog" / "index" / "CURRENT").read_text().strip()
    assert current == report["version"]
    assert report["encoder"]["model"] == "catalog-encoder" and report["encoder"]["version"] == 1  # the champion
    recorded = project / "data" / "catalog" / "index" / "versions" / current / "encoder.json"
    assert json.loads(recorded.read_text())["version"] == 1


def test_search_evaluation_reports_every_query_kind(tiny):
    project, _, _ = tiny
    report = json.loads((project / "reports" / "search.json").read_text())
    for kind in ("sketch", "colour", "photo", "sketch+colour", "fused"):
        assert 0.0 <= report[kind]["acc@1"] <= report[kind]["acc@10"] <= 1.0, kind
        assert report[kind]["acc@1"] <= report[kind]["mrr"] <= 1.0, kind
    assert report["index"]["recall@10"] >= 0.9
    assert report["latency_ms"]["p50"] > 0 and report["n_queries"] > 0
    metrics = run_dvc(project, "metrics", "show", "--json").output
    assert "reports/search.json" in metrics and "acc@10" in metrics


def test_classifier_stage_reports_accuracy_and_registers(tiny):
    project, params, _ = tiny
    report = json.loads((project / "reports" / "classifier.json").read_text())
    assert 0.0 <= report["accuracy"] <= 1.0 and report["n_test"] > 0
    assert set(report["per_category"]) == set(params["categories"])
    assert report["registered_version"] == 1 and report["champion"] is True
    assert (project / "models" / "classifier.pt").stat().st_size > 0


# --- quality floors on the test split (sketch2fashion/quality.py) ----------------------------------

def test_champions_clear_the_quality_floors_that_broken_models_fail(tiny):
    project, params, _ = tiny
    assert pipeline_problems(project, params) == []
    # The same floors refuse broken models: a colorizer with perturbed weights, a classifier at
    # chance, an encoder ranking at random, a search no better than picking any product.
    cat = params["categories"][0]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        start = build_generator(params["model"], params["image"]["size"]).eval()
        untrained = colorizer_evidence(start, project / "data", cat, params).means()
        perturb(start)
        broken = colorizer_evidence(start, project / "data", cat, params).means()
    assert colorizer_problems(cat, broken, untrained)
    n_categories = len(params["categories"])
    assert classifier_problems(1.0 / n_categories, n_categories)
    decision = json.loads((project / "reports" / "promote" / "catalog-encoder.json").read_text())
    assert encoder_problems(chance_mrr(decision["n_test"]), decision["n_test"])
    assert search_problems(1.0 / params["demo"]["per_category"], params["demo"]["per_category"])


# --- the champion gate through the stage commands (last: these move registry aliases) -------------

def stage(project: Path, *args: str, timeout: float = 1200) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, *args], cwd=project, env=tool_env(), capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"{args}: {proc.stderr[-4000:]}"
    return proc


def params_with(project: Path, name: str, changes: dict) -> str:
    """A params file beside params.yaml with `changes` merged in (for a deliberately different candidate)."""
    merged = deep_merge(yaml.safe_load((project / "params.yaml").read_text()), changes)
    (project / name).write_text(yaml.safe_dump(merged, sort_keys=False))
    return name


def champion_of(project: Path, model: str) -> int:
    return {row["model"]: row for row in s2f_json(project, "models", "--json")}[model]["version"]


def colorizer_candidate(project: Path, folder: Path, params: str, *, broken: bool = False) -> Path:
    """train@top from scratch into `folder` (a new MLflow run), weights perturbed when `broken`,
    then evaluate@top: the evaluate report that promote.py takes as its candidate."""
    models, reports = folder / "models", folder / "reports"
    stage(project, "training/train.py", "--category", "top", "--params", params, "--no-resume",
          "--out", str(models / "top"), "--report", str(reports / "train" / "top.json"))
    if broken:
        weights = models / "top" / "best_generator.pt"
        state = torch.load(weights, map_location="cpu", weights_only=False)
        generator = build_generator(yaml.safe_load((project / params).read_text())["model"],
                                    int(yaml.safe_load((project / params).read_text())["image"]["size"]))
        generator.load_state_dict(state["generator"])
        perturb(generator)
        state["generator"] = generator.state_dict()
        torch.save(state, weights)
    stage(project, "training/evaluate.py", "--category", "top", "--params", params,
          "--models-dir", str(models), "--reports-dir", str(reports))
    return reports / "eval" / "top.json"


def promote_top(project: Path, candidate: Path, out: Path, params: str = "params.yaml") -> dict:
    stage(project, "training/promote.py", "--category", "top", "--params", params,
          "--candidate", str(candidate), "--out", str(out))
    return json.loads(out.read_text())


def test_colorizer_gate_refuses_a_rerun_and_a_worse_candidate_and_promotes_a_better_one(tiny, tmp_path):
    project, params, _ = tiny
    good = champion_of(project, "colorizer-top")
    min_gain = params["promote"]["colorizer"]["min_gain"]

    rerun = promote_top(project, colorizer_candidate(project, tmp_path / "rerun", "params.yaml"),
                        tmp_path / "rerun.json")
    assert not rerun["promoted"] and rerun["version"] != good and rerun["champion_version"] == good, rerun
    assert rerun["intervals"]["ssim"]["low"] <= min_gain  # the same code and data: no significant gain

    one_epoch = params_with(project, "params-one-epoch.yaml", {"train": {"epochs": 1, "eval_every": 1}})
    worse = promote_top(project, colorizer_candidate(project, tmp_path / "worse", one_epoch, broken=True),
                        tmp_path / "worse.json", one_epoch)
    assert not worse["promoted"] and worse["champion_version"] == good, worse
    assert worse["intervals"]["ssim"]["high"] < 0  # clearly worse on the test split
    assert champion_of(project, "colorizer-top") == good  # what serving loads did not change

    # A clearly better one: the broken version made champion by hand, then the pipeline's own
    # candidate (its evaluate report) goes through the gate again and wins it back.
    s2f_json(project, "promote", "top", str(worse["version"]))
    assert champion_of(project, "colorizer-top") == worse["version"]
    again = promote_top(project, project / "reports" / "eval" / "top.json", tmp_path / "again.json")
    assert again["promoted"] and again["version"] == good and again["previous_champion"] == worse["version"]
    assert again["intervals"]["ssim"]["low"] > min_gain and again["route"] == "ssim"
    assert champion_of(project, "colorizer-top") == good


def test_classifier_gate_and_category_auto_follow_the_champion(tiny, tmp_path):
    import mlflow

    from sketch2fashion.classifier.model import load_classifier, save_classifier
    from sketch2fashion.classifier.registry import log_and_register
    from sketch2fashion.registry.tracking import configure, get_or_create_experiment
    from sketch2fashion.serving.auto_category import CategoryClassifier
    from sketch2fashion.serving.config import ServingConfig

    project, params, _ = tiny
    good = champion_of(project, "sketch-classifier")

    def train(params_file: str, name: str) -> dict:
        stage(project, "training/train_classifier.py", "--params", params_file, "--out", str(tmp_path / f"{name}.pt"),
              "--report", str(tmp_path / f"{name}.json"), "--decision", str(tmp_path / f"{name}-gate.json"))
        return json.loads((tmp_path / f"{name}-gate.json").read_text())

    with isolated_mlflow():
        served = CategoryClassifier(ServingConfig.from_params(params, project), source="registry")
        assert served.sync() and served.describe()["version"] == good

        one_step = params_with(project, "params-classifier-one-step.yaml",
                               {"classifier": {"epochs": 1, "batch_size": 512}})  # one optimiser step
        worse = train(one_step, "worse")  # on 17 tiny test sketches it may even score higher, by chance
        assert not worse["promoted"] and worse["champion_version"] == good, worse
        assert not served.sync() and served.describe()["version"] == good  # category=auto unchanged

        # A broken classifier (the pipeline's, its head negated: it names the least likely
        # category) made champion by hand; serving follows that promotion too.
        broken = load_classifier(project / "models" / "classifier.pt")
        with torch.no_grad():
            broken.head.weight.neg_()
            broken.head.bias.neg_()
        client = configure(project)
        with mlflow.start_run(experiment_id=get_or_create_experiment("classifier")):
            bad = int(log_and_register(save_classifier(tmp_path / "broken.pt", broken), 0.0, client).version)
        s2f_json(project, "promote", "sketch-classifier", str(bad))  # by hand, past the gate
        assert served.sync() and served.describe()["version"] == bad  # serving follows a promotion

        better = train("params.yaml", "better")  # the pipeline's classifier, retrained
        assert better["promoted"] and better["previous_champion"] == bad, better
        assert better["intervals"]["accuracy"]["low"] > params["promote"]["classifier"]["min_gain"]
        assert served.sync() and served.describe()["version"] == better["version"]
        drawing = np.full((128, 128, 3), 255, np.uint8)
        assert served(drawing) in params["categories"]


def test_encoder_gate_decides_what_the_index_embeds_with(tiny, tmp_path):
    import mlflow

    from sketch2fashion.catalog.embedder import load_encoder, save_encoder
    from sketch2fashion.registry.encoder_model import log_encoder, register_encoder
    from sketch2fashion.registry.tracking import configure, get_or_create_experiment

    project, params, _ = tiny
    good = champion_of(project, "catalog-encoder")
    index_params = params_with(project, "params-scratch-index.yaml", {"catalog": {"index": str(tmp_path / "index")}})

    def index_encoder() -> int:
        stage(project, "training/index_catalog.py", "--params", index_params, "--report", str(tmp_path / "index.json"))
        return json.loads((tmp_path / "index.json").read_text())["encoder"]["version"]

    def train(params_file: str, name: str) -> dict:
        stage(project, "training/train_embedder.py", "--params", params_file, "--out", str(tmp_path / f"{name}.pt"),
              "--report", str(tmp_path / f"{name}.json"), "--decision", str(tmp_path / f"{name}-gate.json"))
        return json.loads((tmp_path / f"{name}-gate.json").read_text())

    diverged = params_with(project, "params-encoder-diverged.yaml", {"search": {"encoder": {"epochs": 1, "lr": 1.0}}})
    worse = train(diverged, "worse")
    assert not worse["promoted"] and worse["champion_version"] == good, worse
    assert index_encoder() == good  # the index embeds with the champion, not the latest version

    # A broken encoder (every weight zeroed: all products tie, each query ranks its photo last)
    # made champion by hand; the pipeline's encoder, retrained, must beat it through the gate.
    broken = load_encoder(project / "models" / "embedder.pt")
    with torch.no_grad():
        for param in broken.parameters():
            param.zero_()
    save_encoder(tmp_path / "broken.pt", broken)
    with isolated_mlflow():
        configure(project)
        with mlflow.start_run(experiment_id=get_or_create_experiment("embedder")) as run:
            version = register_encoder(log_encoder(tmp_path / "broken.pt"), run.info.run_id, {"mrr": 0.0})
    s2f_json(project, "promote", "catalog-encoder", str(version.version))
    assert index_encoder() == int(version.version)
    better = train("params.yaml", "better")
    assert better["promoted"] and better["previous_champion"] == int(version.version), better
    assert better["intervals"]["reciprocal_rank"]["low"] > params["promote"]["encoder"]["min_gain"]
    assert index_encoder() == better["version"] == champion_of(project, "catalog-encoder")
