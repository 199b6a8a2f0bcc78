"""`s2f smoke`: the whole pipeline on a tiny profile in a scratch repo, run twice.

The second `dvc repro` must run nothing: that proves every stage declares its inputs and
outputs completely (a stage that always reruns has an undeclared or unstable dependency). The
champions of the first must clear the quality floors of `sketch2fashion/quality.py` on the
test split, which a broken model fails.
"""
from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from sketch2fashion.params import load_params, with_profile
from sketch2fashion.pipeline import changed_stages, make_scratch_project, run_dvc
from sketch2fashion.quality import pipeline_problems


def run_smoke(root: Path, *, profile: str = "tiny", workdir: Path | None = None,
              keep: bool = False) -> dict[str, Any]:
    params = with_profile(load_params(root / "params.yaml"), root / "profiles" / f"{profile}.yaml")
    scratch = workdir or Path(tempfile.mkdtemp(prefix="s2f-smoke-"))
    try:
        make_scratch_project(root, scratch, params)
        start = time.perf_counter()
        first = run_dvc(scratch, "repro")
        first_s = time.perf_counter() - start
        problems = pipeline_problems(scratch, params)
        if problems:
            raise RuntimeError("the pipeline ran but its champions fail the quality floors:\n  " + "\n  ".join(problems))
        second = run_dvc(scratch, "repro")
        if second.stages_run:
            raise RuntimeError(f"second `dvc repro` reran {second.stages_run}; "
                               "a stage has an undeclared or unstable dependency")
        pending = changed_stages(scratch)
        if pending:
            raise RuntimeError(f"`dvc status` still reports changes after repro: {pending}")
        return {
            "workdir": str(scratch) if keep or workdir else None,
            "profile": profile,
            "stages_run": first.stages_run,
            "first_repro_seconds": round(first_s, 1),
            "quality": "every champion clears its floor on the test split (sketch2fashion/quality.py)",
            "second_repro_ran": second.stages_run,
        }
    finally:
        if not keep and workdir is None:
            shutil.rmtree(scratch, ignore_errors=True)
