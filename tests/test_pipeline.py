"""The DVC pipeline on a real scratch git+DVC repo with the tiny profile (real `dvc`, no mocks)."""
from __future__ import annotations

import csv
import hashlib
import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sketch2fashion.params import load_params, with_profile
from sketch2fashion.pipeline import changed_stages, make_scratch_project, run_dvc, tool_env
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


def _tree_digest(folder: Path) -> dict[str, str]:
    """Hashes of the DVC-tracked files (DVC's own .gitignore files belong to git, not the remote)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".gitignore"}


def test_first_repro_runs_every_stage_and_second_runs_none(tiny):
    project, params, first = tiny
    expected = {"demo_data", "split", "train_embedder", "train_classifier", "catalog", "index", "evaluate_search"} | {
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
    assert {r["split"] for r in rows} <= {"train", "val"} and {r["split"] for r in rows} == {"train", "val"}
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
        # Directly invalidated: only the stages that read image.size (not edges, split, demo).
        assert set(changed_stages(project)) == (_per_category(params, "ingest") | _per_category(params, "train")
                                                | _per_category(params, "evaluate"))
        # What would rerun: those and everything downstream of them, never the demo data.
        dry = run_dvc(project, "repro", "--dry", "--force-downstream")
        assert set(dry.stages_run) == {"split", "train_embedder", "train_classifier", "index", "evaluate_search"} | {
            f"{stage}@{c}" for stage in ("ingest", "edges", "train", "evaluate", "promote") for c in params["categories"]}
    finally:
        params_file.write_text(original)
    assert changed_stages(project) == {}


def test_every_category_has_a_champion_and_metrics_show_ssim(tiny):
    project, params, _ = tiny
    proc = subprocess.run([sys.executable, "-m", "sketch2fashion.cli", "models", "--json"], cwd=project,
                          env=tool_env(), capture_output=True, text=True, timeout=HANG_SECONDS)
    assert proc.returncode == 0, proc.stderr
    rows = {row["category"]: row for row in json.loads(proc.stdout)}
    assert set(rows) == set(params["categories"])
    for cat, row in rows.items():
        evaluated = json.loads((project / "reports" / "eval" / f"{cat}.json").read_text())
        assert row["version"] is not None and abs(row["ssim"] - evaluated["ssim"]) < 1e-6
    metrics = run_dvc(project, "metrics", "show", "--json").output
    assert "reports/eval/top.json" in metrics and "ssim" in metrics


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
    champions = {row["category"]: row for row in json.loads(s2f("models", "--json").stdout)}
    assert champions["hat"]["version"] in (1, "1")


def test_embedder_stage_reports_retrieval_metrics(tiny):
    project, _, _ = tiny
    report = json.loads((project / "reports" / "embedder.json").read_text())
    assert {"sketch_to_photo_acc@1", "acc@10", "mrr", "run_id"} <= set(report)
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
    assert 0.0 <= report["accuracy"] <= 1.0
    assert set(report["per_category"]) == set(params["categories"])
    assert (project / "models" / "classifier.pt").stat().st_size > 0
