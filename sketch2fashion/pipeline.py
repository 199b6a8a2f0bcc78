"""Drive the DVC pipeline from Python: scratch copies of the project and `dvc` subprocesses.

Used by `s2f smoke` and by the tests, which run the real `dvc` against a real scratch repo
instead of imitating it.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

# What a scratch project needs to run the pipeline; library code is copied because stages list
# it as a dependency (the running code is the installed package).
PROJECT_FILES = ("dvc.yaml", ".dvcignore")
PROJECT_DIRS = ("training", "sketch2fashion")
_RAN = re.compile(r"^Running stage '([^']+)'", re.MULTILINE)


@dataclass
class DvcResult:
    args: list[str]
    returncode: int
    output: str

    @property
    def stages_run(self) -> list[str]:
        """Stages that `dvc repro` executed (not the ones it skipped as unchanged)."""
        return _RAN.findall(self.output)


def tool_env() -> dict[str, str]:
    """Environment whose PATH finds this interpreter's `python`, `s2f` and `dvc` first."""
    env = dict(os.environ)
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    env.setdefault("DVC_NO_ANALYTICS", "1")
    return env


def run_dvc(project: Path, *args: str, check: bool = True, timeout: float = 1800) -> DvcResult:
    """Run `dvc ARGS` in `project`; raise RuntimeError with its output when it fails."""
    cmd = [sys.executable, "-m", "dvc", *args]
    proc = subprocess.run(cmd, cwd=project, env=tool_env(), capture_output=True, text=True,
                          timeout=timeout)
    result = DvcResult(list(args), proc.returncode, proc.stdout + proc.stderr)
    if check and proc.returncode != 0:
        raise RuntimeError(f"`dvc {' '.join(args)}` failed in {project}:\n{result.output[-4000:]}")
    return result


def changed_stages(project: Path) -> dict[str, Any]:
    """`dvc status --json`: stage name -> what changed; empty when everything is up to date."""
    return json.loads(run_dvc(project, "status", "--json").output.strip().splitlines()[-1] or "{}")


def make_scratch_project(root: Path, dest: Path, params: dict[str, Any]) -> Path:
    """Copy the pipeline definition, code and `params` into `dest` as a git + DVC repo.

    An existing one (`s2f real` run again) gets today's code and params and keeps its data,
    models and registry: `dvc repro` then reruns only what they change."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        if (root / name).exists():
            shutil.copy2(root / name, dest / name)
    for name in PROJECT_DIRS:
        shutil.rmtree(dest / name, ignore_errors=True)  # a file deleted upstream must go here too
        shutil.copytree(root / name, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    if not (dest / ".dvc").is_dir():
        subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
        run_dvc(dest, "init", "-q")
        if (root / ".dvc" / "config").exists():
            shutil.copy2(root / ".dvc" / "config", dest / ".dvc" / "config")
    return dest
