"""The compiled generator (registry/compiled.py, registry/aot_compile.py): the bucket planner, real
AOTInductor packages of a tiny exported U-Net built by the compiler process and cached, and the
failure when the compiler cannot run."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sketch2fashion.registry.aot_compile import CompileFailed, ensure_packages
from sketch2fashion.registry.compiled import load_compiled_generator, plan_chunks, wants_compile
from sketch2fashion.models.networks import GENERATOR_IN_CHANNELS, UNetGenerator, init_weights
from sketch2fashion.registry.colorizer_model import export_program

SIZE = 32
CPU = torch.device("cpu")


def exported_tiny(tmp_path, ngf: int = 4, seed: int = 0) -> tuple[UNetGenerator, Path]:
    torch.manual_seed(seed)
    generator = init_weights(UNetGenerator(ngf=ngf, depth=5)).eval()
    return generator, export_program(generator, torch.zeros(1, GENERATOR_IN_CHANNELS, SIZE, SIZE), tmp_path / "g.pt2")


def packages(path: Path, cache: Path, batch_sizes: list[int], dtype: torch.dtype = torch.float32) -> dict[int, Path]:
    return ensure_packages(path, batch_sizes=batch_sizes, dtype=dtype, device=CPU, image_size=SIZE,
                           in_channels=GENERATOR_IN_CHANNELS, cache=cache)


def inputs(n: int, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).uniform(-1, 1, (n, GENERATOR_IN_CHANNELS, SIZE, SIZE)).astype(np.float32))


@pytest.mark.parametrize("n, costs, expected", [
    (1, {1: 31.0, 8: 157.0}, [1]),
    (3, {1: 31.0, 8: 157.0}, [1, 1, 1]),       # 93 ms beats one padded batch of 8 (157)
    (6, {1: 31.0, 8: 157.0}, [8]),             # 157 beats 6 x 31 = 186
    (13, {1: 31.0, 8: 157.0}, [8, 1, 1, 1, 1, 1]),  # 157 + 5 x 31 = 312 beats 2 x 157 = 314
    (16, {1: 31.0, 8: 157.0}, [8, 8]),
    (5, {1: 10.0, 2: 12.0, 4: 20.0}, [4, 1]),
])
def test_plan_chunks_covers_the_rows_at_least_cost(n, costs, expected):
    chunks = plan_chunks(n, costs)
    assert sum(chunks) >= n and chunks == sorted(chunks, reverse=True)
    assert chunks == expected
    best = min(sum(costs[c] for c in combo) for combo in _all_covers(n, sorted(costs)))
    assert sum(costs[c] for c in chunks) == pytest.approx(best)


def _all_covers(n: int, sizes: list[int], smallest: int = 0) -> list[list[int]]:
    """Every multiset of sizes (non-decreasing) covering n with no chunk left wholly empty."""
    if n <= 0:
        return [[]]
    out = []
    for size in sizes:
        if size >= smallest:
            out += [[size] + rest for rest in _all_covers(n - size, sizes, size)]
    return out


def test_plan_chunks_refuses_nothing_to_plan():
    with pytest.raises(ValueError):
        plan_chunks(0, {1: 1.0})
    with pytest.raises(ValueError):
        plan_chunks(2, {})


def test_wants_compile_settings():
    assert wants_compile("off", CPU) == (False, "compile: off")
    with pytest.raises(ValueError, match="compile must be one of"):
        wants_compile("yes", CPU)


@pytest.mark.slow
def test_compiled_generator_matches_eager_at_every_batch_size_and_repeats_exactly(tmp_path):
    generator, path = exported_tiny(tmp_path)
    built = packages(path, tmp_path / "cache", [1, 4])
    stamps = {size: p.stat().st_mtime_ns for size, p in built.items()}
    runner = load_compiled_generator(built, CPU, inputs(1))
    assert runner.batch_sizes == [1, 4] and all(cost > 0 for cost in runner.costs.values())
    x = inputs(7, seed=1)
    with torch.no_grad():
        expected = generator(x)
    for n in (1, 2, 4, 7):  # 2 and 7 need padding or several chunks
        got = runner(x[:n])
        assert got.shape == (n, 3, SIZE, SIZE)
        np.testing.assert_allclose(got.numpy(), expected[:n].numpy(), atol=1e-4)
    np.testing.assert_array_equal(runner(x).numpy(), runner(x).numpy())
    again = packages(path, tmp_path / "cache", [4, 1])  # the same machine asks again: nothing is rebuilt
    assert again == built and {size: p.stat().st_mtime_ns for size, p in again.items()} == stamps
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted(p.name for p in built.values())


@pytest.mark.slow
def test_a_failing_compiler_raises_with_its_reason_and_leaves_no_package(tmp_path, monkeypatch):
    _, path = exported_tiny(tmp_path, ngf=5, seed=1)
    monkeypatch.setenv("CXX", "/nonexistent/c++")  # read by Inductor in the compiler process
    monkeypatch.setenv("TORCHINDUCTOR_FX_GRAPH_CACHE", "0")
    with pytest.raises(CompileFailed, match="exited with"):
        packages(path, tmp_path / "cache", [3])
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())
