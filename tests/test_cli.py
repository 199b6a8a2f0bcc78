"""The `s2f` command line and the params loader it stands on."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sketch2fashion.params import ParamsError, deep_merge, load_params, with_profile
from waiting import HANG_SECONDS

S2F = [sys.executable, "-m", "sketch2fashion.cli"]


def run(args, cwd):
    return subprocess.run(S2F + args, cwd=cwd, capture_output=True, text=True, timeout=HANG_SECONDS)


@pytest.mark.parametrize("args", [["--help"], ["demo-data", "--help"], ["params", "--help"], ["smoke", "--help"], ["models", "--help"], ["catalog", "ingest", "--help"],
                                  ["catalog", "cards", "--help"], ["real", "--help"]])
def test_every_command_has_help(args, project_root):
    proc = run(args, project_root)
    assert proc.returncode == 0, proc.stderr
    assert "Usage:" in proc.stdout


def test_params_with_tiny_profile_overrides_only_what_it_names(project_root):
    proc = run(["params", "--profile", "tiny"], project_root)
    assert proc.returncode == 0, proc.stderr
    merged = yaml.safe_load(proc.stdout)
    base = load_params(project_root / "params.yaml")
    tiny = load_params(project_root / "profiles" / "tiny.yaml")
    assert merged["image"]["size"] == tiny["image"]["size"] != base["image"]["size"]
    assert merged["categories"] == base["categories"]
    assert merged["edges"] == base["edges"]


def test_missing_or_broken_params_file_is_a_clear_error(tmp_path: Path):
    proc = run(["params", "--params", str(tmp_path / "nope.yaml")], tmp_path)
    assert proc.returncode != 0
    assert "nope.yaml" in proc.stderr and "Traceback" not in proc.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("image: [unclosed\n")
    with pytest.raises(ParamsError, match="broken.yaml"):
        load_params(broken)


def test_deep_merge_keeps_siblings_and_does_not_mutate_inputs():
    base = {"a": {"x": 1, "y": 2}, "b": [1]}
    merged = deep_merge(base, {"a": {"y": 3}, "b": [2]})
    assert merged == {"a": {"x": 1, "y": 3}, "b": [2]}
    assert base == {"a": {"x": 1, "y": 2}, "b": [1]}
    assert with_profile(base, None) is base


def test_mlflow_store_folder_never_shadows_the_mlflow_package(project_root):
    assert (project_root / "mlflow").is_dir()
    assert not (project_root / "mlflow" / "__init__.py").exists()


def test_catalog_ingest_command_is_idempotent_and_reports_bad_rows(tmp_path: Path, project_root):
    from sketch2fashion.demo import make_demo_dataset

    feed = make_demo_dataset(tmp_path / "shop", categories=["top", "hat"], per_category=2, seed=0, size=96)
    lines = feed.read_text().splitlines()
    feed.write_text("\n".join(lines + [lines[1]]) + "\n")  # a duplicate id: reported, not fatal
    args = ["catalog", "ingest", str(feed), "--params", str(project_root / "params.yaml"),
            "--store", str(tmp_path / "catalog" / "c.sqlite"), "--jobs", "1"]
    first = run(args, tmp_path)
    assert first.returncode == 0, first.stderr
    assert "4 added" in first.stdout and "1 skipped" in first.stdout
    assert "duplicate" in first.stderr.lower()
    second = run(args, tmp_path)
    assert second.returncode == 0 and "4 unchanged" in second.stdout and "0 added" in second.stdout


def test_catalog_ingest_names_a_missing_feed(tmp_path: Path):
    proc = run(["catalog", "ingest", str(tmp_path / "none.csv")], tmp_path)
    assert proc.returncode != 0 and "none.csv" in proc.stderr and "Traceback" not in proc.stderr


# --- params.yaml: one table of defaults, no unknown keys ---------------------------------------

def _paths(mapping: dict, schema: dict, prefix: str = "") -> set[str]:
    """Dotted keys of a params mapping, descending only where SCHEMA lists the sub-keys."""
    out = set()
    for key, value in mapping.items():
        out.add(prefix + key)
        if isinstance(value, dict) and isinstance(schema.get(key), dict):
            out |= _paths(value, schema[key], f"{prefix}{key}.")
    return out


def test_the_schema_knows_exactly_the_keys_of_the_repository_params(project_root):
    from sketch2fashion.params import SCHEMA, schema_paths

    params = load_params(project_root / "params.yaml")
    assert _paths(params, SCHEMA) == schema_paths(), "params.yaml and params.SCHEMA disagree"
    load_params(project_root / "profiles" / "tiny.yaml")  # a profile holds a subset: fine


@pytest.mark.parametrize("section, key", [("serving", "compiel"), ("catalog", "jobz"), ("split", "test_fractio"),
                                          ("promote", "min_gain"), ("classifier", "epoch"), ("image", "sise")])
def test_an_unknown_key_in_any_section_is_refused_with_the_keys_it_has(tmp_path, project_root, section, key):
    params = yaml.safe_load((project_root / "params.yaml").read_text())
    params[section][key] = 1
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(ParamsError, match=rf"unknown key '{section}\.{key}'.*the keys of {section} are"):
        load_params(path)


def test_catalog_ingest_refuses_an_unknown_catalog_key(tmp_path: Path, project_root):
    params = yaml.safe_load((project_root / "params.yaml").read_text())
    params["catalog"]["max_byte"] = 10  # a typo the command used to drop silently
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    (tmp_path / "feed.csv").write_text("id,title\n")
    proc = run(["catalog", "ingest", "feed.csv"], tmp_path)
    assert proc.returncode != 0 and "catalog.max_byte" in proc.stderr and "Traceback" not in proc.stderr


def test_serving_settings_have_no_second_table_of_defaults(project_root):
    """Every serving key comes from params.yaml; one missing is an error naming it, not a fallback."""
    from sketch2fashion.serving.config import ServingConfig

    params = yaml.safe_load((project_root / "params.yaml").read_text())
    config = ServingConfig.from_params(params, project_root)
    serving = params["serving"]
    assert (config.compile, config.png_compression) == (serving["compile"], serving["png_compression"])
    assert config.max_latency_ms == serving["batching"]["max_latency_ms"]
    assert config.max_concurrency == serving["traffic"]["max_concurrency"]
    for dotted in ("compile", "png_compression", "batching.max_latency_ms", "traffic.max_concurrency"):
        broken = yaml.safe_load((project_root / "params.yaml").read_text())
        *parents, last = dotted.split(".")
        holder = broken["serving"]
        for part in parents:
            holder = holder[part]
        del holder[last]
        with pytest.raises(ParamsError, match=rf"missing serving\.{re.escape(dotted)}"):
            ServingConfig.from_params(broken, project_root)
