"""MLflow tracking, the colorizer pyfunc model, the registry gate and the promote stage.

Everything runs against a real SQLite MLflow store in a temporary folder (no mocks). Creating a
store costs a couple of seconds of schema migrations, so one store and three logged tiny models
are shared by the module; each registry test uses its own category (= its own registered
model), which keeps the tests independent of each other and of their order.
"""
from __future__ import annotations

import copy
import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import cv2
import mlflow
import numpy as np
import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient

from sketch2fashion.data.manifest import write_manifest
from sketch2fashion.imaging.io import decode_rgb, encode_png, save_png
from sketch2fashion.params import load_params
from sketch2fashion.models.networks import UNetGenerator, init_weights
from sketch2fashion.registry import promotion
from sketch2fashion.registry.colorizer_model import (
    fit_input,
    CONFIG_FILE,
    ColorizerModel,
    colorize_png,
    export_program,
    log_colorizer,
)
from sketch2fashion.registry.promotion import (
    PromotionError,
    champion,
    is_reexport,
    list_champions,
    previous,
    promote,
    register_version,
    rollback,
)
from sketch2fashion.registry.tracking import (
    artifact_root_for,
    configure,
    data_hash,
    get_or_create_experiment,
    run_tags,
    tracking_uri,
)
from mlflow_sandbox import isolated_mlflow
from waiting import HANG_SECONDS

ROOT = Path(__file__).resolve().parents[1]
SIZE = 32


@dataclass(frozen=True)
class Store:
    root: Path
    uri: str
    client: MlflowClient
    run_ids: tuple[str, ...]
    generators: tuple[UNetGenerator, ...]


def tiny_generator(seed: int) -> UNetGenerator:
    torch.manual_seed(seed)
    return init_weights(UNetGenerator(ngf=4, depth=5))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    root = tmp_path_factory.mktemp("project")
    with isolated_mlflow():
        client = configure(root)
        experiment = get_or_create_experiment("colorizer-test")
        run_ids, generators = [], []
        for seed in range(3):
            generator = tiny_generator(seed)
            with mlflow.start_run(experiment_id=experiment, tags=run_tags("top", root)) as run:
                log_colorizer(generator, category="top", image_size=SIZE,
                              model_config={"ngf": 4, "depth": 5}, step=seed)
            run_ids.append(run.info.run_id)
            generators.append(generator)
        yield Store(root, tracking_uri(root), client, tuple(run_ids), tuple(generators))


@pytest.fixture(scope="module")
def top_champion(store: Store) -> int:
    """Category `top` with its first version registered and promoted (shared, read-only)."""
    version = register_version(store.run_ids[0], "top", artifact_path="model", ssim=0.5, epoch=3)
    decision = promote(store.client, "top", version.version)
    assert decision.promoted
    return int(version.version)


def register(store: Store, category: str, run: int, ssim: float) -> int:
    return int(register_version(store.run_ids[run], category, artifact_path="model",
                                ssim=ssim, epoch=run + 1).version)


def aliases(store: Store, category: str) -> dict[str, int]:
    model = store.client.get_registered_model(promotion.registered_model_name(category))
    return {alias: int(version) for alias, version in model.aliases.items()}


def sketch_png(size: int = 64) -> bytes:
    """A shopper's drawing: black garment outline on white paper with one red hint dot."""
    img = np.full((size, size, 3), 255, np.uint8)
    cv2.rectangle(img, (size // 4, size // 5), (3 * size // 4, 4 * size // 5), (0, 0, 0), 2)
    cv2.circle(img, (size // 2, size // 2), size // 10, (220, 30, 30), -1)
    return encode_png(img)


# --- tracking ---------------------------------------------------------------------------------

def test_tracking_uri_is_project_sqlite_unless_env_says_otherwise(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = tracking_uri(tmp_path)
    assert uri == "sqlite:///" + (tmp_path.resolve() / "mlflow" / "mlflow.db").as_posix()
    assert uri.startswith("sqlite:////")  # absolute path
    assert artifact_root_for(uri) == tmp_path.resolve() / "mlflow" / "artifacts"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")
    assert tracking_uri(tmp_path) == "http://mlflow.internal:5000"
    assert artifact_root_for("http://mlflow.internal:5000") is None


def test_models_and_runs_land_in_the_project_store(store):
    assert (store.root / "mlflow" / "mlflow.db").is_file()
    assert not (store.root / "mlflow" / "__init__.py").exists()
    experiment = store.client.get_experiment_by_name("colorizer-test")
    artifacts = (store.root / "mlflow" / "artifacts").resolve()
    assert experiment.artifact_location.startswith(artifacts.as_uri())
    assert get_or_create_experiment("colorizer-test") == experiment.experiment_id
    assert list(artifacts.rglob(CONFIG_FILE)), "model artifacts are not under mlflow/artifacts"
    tags = store.client.get_run(store.run_ids[0]).data.tags
    assert tags["category"] == "top" and "git_commit" in tags and "dvc_data_hash" in tags


def test_run_tags_outside_git_and_dvc_are_unknown(tmp_path):
    tags = run_tags("top", tmp_path)
    assert tags == {"category": "top", "git_commit": "unknown", "dvc_data_hash": "unknown"}


def test_git_commit_is_recorded_inside_the_repo():
    commit = run_tags("top", ROOT)["git_commit"]
    if commit == "unknown":
        pytest.skip("project is not a git checkout with commits here")
    assert len(commit) == 40 and int(commit, 16) >= 0


def test_data_hash_follows_only_the_category_own_data(tmp_path):
    def lock(top_md5: str, pants_md5: str) -> None:
        stages = {f"{stage}@{cat}": {"cmd": "x", "outs": [{"path": f"data/{stage}/{cat}", "md5": md5}]}
                  for stage in ("ingest", "edges") for cat, md5 in (("top", top_md5), ("pants", pants_md5))}
        (tmp_path / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": stages}))

    lock("a.dir", "b.dir")
    first = data_hash("top", tmp_path)
    assert len(first) == 64 and data_hash("top", tmp_path) == first
    lock("a.dir", "changed.dir")
    assert data_hash("top", tmp_path) == first  # another category's data changed
    lock("new.dir", "changed.dir")
    lock_only = data_hash("top", tmp_path)
    assert lock_only != first

    manifest = tmp_path / "data" / "manifest.csv"
    manifest.parent.mkdir()
    manifest.write_text("id,category,split\n1,top,train\n2,pants,val\n")
    with_split = data_hash("top", tmp_path)
    assert with_split != lock_only  # the category's manifest rows (its split) count too
    manifest.write_text("id,category,split\n1,top,train\n2,pants,train\n")
    assert data_hash("top", tmp_path) == with_split
    manifest.write_text("id,category,split\n1,top,val\n2,pants,train\n")
    assert data_hash("top", tmp_path) != with_split

    (tmp_path / "dvc.lock").unlink()  # no DVC lock yet: the manifest alone identifies the data
    assert data_hash("top", tmp_path) not in ("unknown", with_split)


# --- the model flavor ---------------------------------------------------------------------

def test_export_matches_eager_eval_at_any_batch_and_leaves_the_generator_alone(tmp_path):
    generator = tiny_generator(7).train()
    x = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, (3, 9, SIZE, SIZE)).astype(np.float32))
    path = export_program(generator, x[:1], tmp_path / "g.pt2")
    assert generator.training and next(generator.parameters()).is_contiguous()
    loaded = torch.export.load(str(path)).module()
    with torch.no_grad():
        expected = generator.eval()(x)
        for n in (1, 3):  # the batch dimension is exported dynamic, batch 1 included
            np.testing.assert_allclose(loaded(x[:n]).numpy(), expected[:n].numpy(), atol=1e-5)
        with pytest.raises(Exception):
            loaded(torch.zeros(1, 9, 2 * SIZE, 2 * SIZE))  # height and width are fixed


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_a_legacy_torchscript_version_still_loads_and_predicts(tmp_path):
    """Versions registered before torch.export hold a frozen TorchScript `generator.pt`."""
    generator = tiny_generator(3).eval()
    x = np.random.default_rng(2).uniform(-1, 1, (2, 9, SIZE, SIZE)).astype(np.float32)
    with torch.no_grad():
        frozen = torch.jit.freeze(torch.jit.trace(copy.deepcopy(generator), torch.from_numpy(x[:1])))
    torch.jit.save(frozen, str(tmp_path / "generator.pt"))
    (tmp_path / CONFIG_FILE).write_text(json.dumps({"category": "top", "image_size": SIZE, "depth": 5,
                                                    "format": "torchscript-frozen-channels-last"}))
    with isolated_mlflow():  # save_model records a logged model in the tracking store: keep it in tmp_path
        configure(tmp_path)
        mlflow.pyfunc.save_model(tmp_path / "model", python_model=ColorizerModel(),
                                 artifacts={"generator": str(tmp_path / "generator.pt"),
                                            "config": str(tmp_path / CONFIG_FILE)},
                                 pip_requirements=["torch", "numpy"],
                                 model_config={"device": "auto", "dtype": "auto"})
    model = mlflow.pyfunc.load_model(str(tmp_path / "model"),
                                     model_config={"dtype": "fp32", "compile": "auto"})
    with torch.no_grad():
        expected = generator(torch.from_numpy(x)).clamp(-1, 1).numpy()  # served photos are clamped to the image range
    np.testing.assert_allclose(model.predict(x), expected, atol=1e-3)  # channels-last kernels differ slightly
    # MLflow only lets a load override keys the model was logged with: "compile" is not one of
    # a legacy version's, so it stays uncompiled either way.
    assert model.unwrap_python_model().compiled["compiled"] is False


def test_a_version_from_before_the_flat_fill_reads_the_first_five_channels(tmp_path):
    """Registered 5-channel generators (sketch only) still serve from today's 9-channel input."""
    torch.manual_seed(4)
    old = init_weights(UNetGenerator(in_channels=5, ngf=4, depth=5, upsample="transpose", output="image")).eval()
    with isolated_mlflow():
        configure(tmp_path)
        with mlflow.start_run():
            info = log_colorizer(old, category="top", image_size=SIZE)
        model = mlflow.pyfunc.load_model(info.model_uri, model_config={"dtype": "fp32"})
    x = np.random.default_rng(5).uniform(-1, 1, (2, 9, SIZE, SIZE)).astype(np.float32)
    with torch.no_grad():
        expected = old(torch.from_numpy(x[:, :5])).numpy()
    np.testing.assert_allclose(model.predict(fit_input(model, x)), expected, atol=1e-5)


def test_logged_model_has_signature_config_and_minimal_requirements(store):
    info = mlflow.models.get_model_info(f"runs:/{store.run_ids[0]}/model")
    inputs, outputs = info.signature.inputs.inputs[0], info.signature.outputs.inputs[0]
    assert (inputs.type, inputs.shape) == (np.dtype(np.float32), (-1, 9, SIZE, SIZE))
    assert (outputs.type, outputs.shape) == (np.dtype(np.float32), (-1, 3, SIZE, SIZE))
    local = Path(mlflow.artifacts.download_artifacts(info.model_uri))
    requirements = (local / "requirements.txt").read_text().split()
    assert {r.split("==")[0] for r in requirements} <= {"mlflow", "torch", "numpy"}
    config = json.loads((local / "artifacts" / CONFIG_FILE).read_text())
    assert config["category"] == "top" and config["image_size"] == SIZE
    assert config["model"] == {"ngf": 4, "depth": 5} and config["depth"] == 5
    assert (local / "input_example.json").is_file()


def test_log_colorizer_needs_an_active_run(store):
    with pytest.raises(RuntimeError, match="active MLflow run"):
        log_colorizer(tiny_generator(0), category="top", image_size=SIZE)


def test_predictions_are_deterministic_and_match_the_generator(store, top_champion):
    model = mlflow.pyfunc.load_model("models:/colorizer-top@champion", model_config={"dtype": "fp32"})
    x = np.random.default_rng(1).uniform(-1, 1, (3, 9, SIZE, SIZE)).astype(np.float32)
    first, second = model.predict(x), model.predict(x)
    assert first.shape == (3, 3, SIZE, SIZE) and first.dtype == np.float32
    np.testing.assert_array_equal(first, second)
    with torch.no_grad():
        expected = store.generators[0].eval()(torch.from_numpy(x)).clamp(-1, 1).numpy()
    np.testing.assert_allclose(first, expected, atol=1e-5)
    auto = mlflow.pyfunc.load_model("models:/colorizer-top@champion")  # bf16 where native
    np.testing.assert_array_equal(auto.predict(x), auto.predict(x))
    assert np.abs(auto.predict(x) - expected).max() < 1 / 127.5  # below one 8-bit level
    with pytest.raises(Exception, match="schema|shape"):
        model.predict(np.zeros((1, 9, 2 * SIZE, 2 * SIZE), np.float32))
    png = colorize_png(model, sketch_png(), SIZE)
    assert decode_rgb(png).shape == (SIZE, SIZE, 3)
    assert colorize_png(model, sketch_png(), SIZE) == png


@pytest.mark.slow
def test_champion_loads_and_colorizes_in_a_fresh_process(store, top_champion, tmp_path):
    (tmp_path / "sketch.png").write_bytes(sketch_png())
    script = (
        "import json, sys, numpy as np, mlflow\n"
        "from sketch2fashion.registry.colorizer_model import colorize_png\n"
        "model = mlflow.pyfunc.load_model('models:/colorizer-top@champion')\n"
        "y = model.predict(np.zeros((2, 9, 32, 32), np.float32))\n"
        "png = colorize_png(model, open('sketch.png', 'rb').read(), 32)\n"
        "open('photo.png', 'wb').write(png)\n"
        "print(json.dumps({'shape': list(y.shape), 'dtype': str(y.dtype),\n"
        "                  'range': [float(y.min()), float(y.max())]}))\n"
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": store.uri, "MLFLOW_REGISTRY_URI": store.uri,
           "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=HANG_SECONDS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["shape"] == [2, 3, SIZE, SIZE] and result["dtype"] == "float32"
    assert -1.0 <= result["range"][0] <= result["range"][1] <= 1.0
    assert decode_rgb((tmp_path / "photo.png").read_bytes()).shape == (SIZE, SIZE, 3)


# --- registry and the champion gate ---------------------------------------------------------

def test_first_version_becomes_champion(store, top_champion):
    current = champion(store.client, "top")
    assert current is not None and int(current.version) == top_champion
    assert current.tags["promotion"] == "promoted"
    assert {"ssim", "epoch", "category", "run_id"} <= set(current.tags)
    assert current.tags["run_id"] == store.run_ids[0] and current.tags["category"] == "top"


def test_a_new_export_of_the_champions_weights_is_a_new_version_and_a_reexport(store):
    def reg(run: int, export_format: str | None, epoch: int = 4) -> int:
        return int(register_version(store.run_ids[run], "reexport", artifact_path="model", ssim=0.7,
                                    epoch=epoch, export_format=export_format).version)

    def version(number: int):
        return store.client.get_model_version("colorizer-reexport", str(number))

    legacy = reg(0, None)  # registered before the format tag existed
    promote(store.client, "reexport", legacy)
    assert reg(0, None) == legacy  # no format given: any version of the run is reused
    exported = reg(0, "torch-export")  # same run and epoch, new format: a new version
    assert exported != legacy and reg(0, "torch-export") == exported  # registered once
    current = champion(store.client, "reexport")
    assert is_reexport(version(exported), current)  # the gate then adds its re-export route
    assert not is_reexport(version(reg(0, "other-format", epoch=5)), current)  # other weights
    assert not is_reexport(version(reg(1, "torch-export")), current)  # another run
    assert not is_reexport(version(exported), None)


def test_registering_the_same_run_twice_reuses_its_version(store):
    first = register(store, "idempotent", 0, ssim=0.5)
    assert register(store, "idempotent", 0, ssim=0.5) == first
    assert promote(store.client, "idempotent", first).reason == "manual promotion"
    again = promote(store.client, "idempotent", first)
    assert again.promoted and again.reason == "already the champion"
    assert aliases(store, "idempotent") == {"champion": first}


def test_rollback_restores_the_previous_champion(store):
    v1 = register(store, "rollback", 0, ssim=0.50)
    promote(store.client, "rollback", v1)
    with pytest.raises(PromotionError, match="no 'previous'"):
        rollback(store.client, "rollback")
    v2 = register(store, "rollback", 1, ssim=0.70)
    promote(store.client, "rollback", v2)
    decision = rollback(store.client, "rollback")
    assert decision.version == v1 and decision.old_version == v2
    assert aliases(store, "rollback") == {"champion": v1, "previous": v2}
    assert store.client.get_model_version("colorizer-rollback", str(v2)).tags["promotion"] == "rolled_back"
    rollback(store.client, "rollback")  # rolling back twice undoes the rollback
    assert aliases(store, "rollback") == {"champion": v2, "previous": v1}


def test_manual_promotion_overrides_the_gate_and_refuses_unknown_versions(store):
    v1 = register(store, "manual", 0, ssim=0.60)
    promote(store.client, "manual", v1)
    v2 = register(store, "manual", 1, ssim=0.40)
    decision = promote(store.client, "manual", v2)
    assert decision.promoted and decision.reason == "manual promotion"
    assert aliases(store, "manual") == {"champion": v2, "previous": v1}
    assert int(previous(store.client, "manual").version) == v1
    with pytest.raises(PromotionError, match=r"colorizer-manual has no version 99.*1, 2"):
        promote(store.client, "manual", 99)
    with pytest.raises(PromotionError, match="nothing registered"):
        promote(store.client, "never-registered", 1)
    assert aliases(store, "manual") == {"champion": v2, "previous": v1}


def test_list_champions_reports_each_category(store, top_champion):
    rows = list_champions(store.client, ["top", "nothing-here"])
    assert rows == [
        {"category": "top", "version": top_champion, "epoch": 3, "ssim": 0.5, "test_ssim": None,
         "run_id": store.run_ids[0]},
        {"category": "nothing-here", "version": None, "epoch": None, "ssim": None, "test_ssim": None,
         "run_id": None},
    ]


# --- the DVC stage script -------------------------------------------------------------------

PROMOTE = ROOT / "training" / "promote.py"


def load_stage_script() -> ModuleType:
    """training/promote.py as a module (training/ is a folder of scripts, not a package)."""
    spec = importlib.util.spec_from_file_location("promote_stage", PROMOTE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_stage(cwd: Path, uri: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_REGISTRY_URI": uri}
    return subprocess.run([sys.executable, str(PROMOTE), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=HANG_SECONDS)


STAGE_HINTS = {"min": 0, "max": 4, "dot_radius": [1, 2], "stroke_fraction": 0.4}


def stage_params() -> dict:
    """The repository's promote section (the gate) for a 32 px category `stage`."""
    repo = load_params(ROOT / "params.yaml")
    return {"categories": ["stage"], "image": {"size": SIZE}, "hints": STAGE_HINTS, "train": {"seed": 0},
            "promote": repo["promote"]}


def write_test_split(data: Path, n: int = 8) -> None:
    """A data folder of n ellipse garments of category `stage`, all in the test split."""
    rows = []
    for i in range(n):
        item_id = f"stage-{i:02d}"
        mask = np.zeros((SIZE, SIZE), np.uint8)
        cv2.ellipse(mask, (16, 17), (7 + i % 3, 11), 0, 0, 360, 255, -1)
        photo = np.full((SIZE, SIZE, 3), 255, np.uint8)
        photo[mask > 0] = (30 * i, 120, 220 - 25 * i)
        edges = np.where(cv2.morphologyEx(mask, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0,
                         0, 255).astype(np.uint8)
        for folder, image in (("raw", photo), ("masks", mask), ("edges", edges)):
            save_png(data / folder / "stage" / f"{item_id}.png", image)
        rows.append({"id": item_id, "category": "stage", "image": f"raw/stage/{item_id}.png",
                     "mask": f"masks/stage/{item_id}.png", "isolation": "ok", "split": "test"})
    write_manifest(data / "manifest.csv", rows)


def write_stage_inputs(folder: Path, run_id: str, ssim: float, epoch: int, model_uri: str | None = None) -> None:
    (folder / "params.yaml").write_text(yaml.safe_dump(stage_params()))
    if not (folder / "data" / "manifest.csv").is_file():
        write_test_split(folder / "data")
    candidate = folder / "reports" / "eval" / "stage.json"
    candidate.parent.mkdir(parents=True, exist_ok=True)
    candidate.write_text(json.dumps({"run_id": run_id, "ssim": ssim, "epoch": epoch, "artifact_path": "model",
                                     **({"model_uri": model_uri} if model_uri else {})}))


def log_copy_of(store: Store, generator: UNetGenerator) -> tuple[str, str]:
    """The same weights logged again in a new run (a rerun of the same code and data): (run id, model uri)."""
    with isolated_mlflow():
        configure(store.root)
        with mlflow.start_run(experiment_id=get_or_create_experiment("colorizer-test"),
                              tags=run_tags("top", store.root)) as run:
            info = log_colorizer(generator, category="top", image_size=SIZE, model_config={"ngf": 4, "depth": 5})
    return run.info.run_id, info.model_uri


@pytest.mark.slow
def test_promote_stage_registers_and_gates_end_to_end(store, tmp_path):
    write_stage_inputs(tmp_path, store.run_ids[0], ssim=0.55, epoch=4)
    proc = run_stage(tmp_path, store.uri, "--category", "stage")
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "reports" / "promote" / "stage.json").read_text())
    assert report["promoted"] and report["champion_version"] == report["version"] == 1
    assert report["reason"] == "no champion yet" and report["run_id"] == store.run_ids[0]
    assert report["split"] == "test" and report["n_test"] == 8 and report["val"]["ssim"] == 0.55
    assert 0 < report["test"]["candidate"]["ssim"] <= 1 and report["test"]["champion"] is None

    # The same weights again from a new run (a rerun of the same code and data): every per-image
    # difference is 0, so the interval is [0, 0] and the candidate stays a challenger.
    run_id, uri = log_copy_of(store, store.generators[0])
    write_stage_inputs(tmp_path, run_id, ssim=0.56, epoch=5, model_uri=uri)
    proc = run_stage(tmp_path, store.uri, "--category", "stage")
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "reports" / "promote" / "stage.json").read_text())
    assert not report["promoted"] and report["version"] == 2 and report["champion_version"] == 1
    assert "kept as challenger" in proc.stdout
    assert report["intervals"]["ssim"] == {"metric": "ssim", "candidate": report["test"]["champion"]["ssim"],
                                           "champion": report["test"]["champion"]["ssim"], "gain": 0.0,
                                           "low": 0.0, "high": 0.0, "n": 8}
    version = store.client.get_model_version("colorizer-stage", "2")
    assert version.tags["epoch"] == "5" and "git_commit" in version.tags  # lineage copied from the run
    assert version.tags["promotion"] == "rejected" and json.loads(version.tags["gate_ssim"])["high"] == 0.0
    assert float(version.tags["val_ssim"]) == 0.56 and "test_ssim" in version.tags


def test_promote_stage_errors_are_one_line_without_traceback(store, tmp_path):
    write_stage_inputs(tmp_path, store.run_ids[0], ssim=0.5, epoch=1)
    (tmp_path / "reports" / "eval" / "stage.json").unlink()
    proc = run_stage(tmp_path, store.uri, "--category", "stage")
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert "no such candidate file" in proc.stderr and "evaluate@stage" in proc.stderr


@pytest.mark.parametrize("problem, expected", [
    ("no_params", "no such params file"),
    ("no_min_gain", "missing promote.colorizer.min_gain"),
    ("bad_json", "not a readable JSON"),
    ("missing_keys", "missing ssim, epoch"),
    ("unknown_run", "not in the MLflow store"),
])
def test_promote_stage_explains_bad_inputs(store, tmp_path, monkeypatch, capsys, problem, expected):
    main = load_stage_script().main
    monkeypatch.chdir(tmp_path)
    write_stage_inputs(tmp_path, store.run_ids[0], ssim=0.5, epoch=1)
    candidate = tmp_path / "reports" / "eval" / "stage.json"
    if problem == "no_params":
        (tmp_path / "params.yaml").unlink()
    elif problem == "no_min_gain":
        params = stage_params()
        del params["promote"]["colorizer"]["min_gain"]
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    elif problem == "bad_json":
        candidate.write_text("{not json")
    elif problem == "missing_keys":
        candidate.write_text(json.dumps({"run_id": "abc", "artifact_path": "model"}))
    elif problem == "unknown_run":
        candidate.write_text(json.dumps({"run_id": "0" * 32, "ssim": 0.5, "epoch": 1,
                                         "artifact_path": "model"}))
    assert main(["--category", "stage"]) == 1
    assert expected in capsys.readouterr().err


def test_promote_stage_has_help():
    with pytest.raises(SystemExit) as exit_info:
        load_stage_script().parse_args(["--help"])
    assert exit_info.value.code == 0
