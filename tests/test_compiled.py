"""torch.compile'd generator (registry/compiled.py): the bucket planner, real Inductor compiles of a
tiny exported U-Net, and the fallback when the compiler cannot run."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch._inductor.config as inductor_config

from sketch2fashion.registry.compiled import compile_generator, plan_chunks, wants_compile
from sketch2fashion.models.networks import GENERATOR_IN_CHANNELS, UNetGenerator, init_weights
from sketch2fashion.registry.colorizer_model import export_program

SIZE = 32
CPU = torch.device("cpu")


def exported_tiny(tmp_path, ngf: int = 4, seed: int = 0) -> tuple[UNetGenerator, torch.nn.Module]:
    torch.manual_seed(seed)
    generator = init_weights(UNetGenerator(ngf=ngf, depth=5)).eval()
    path = export_program(generator, torch.zeros(1, GENERATOR_IN_CHANNELS, SIZE, SIZE), tmp_path / "g.pt2")
    return generator, torch.export.load(str(path)).module()


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
    generator, module = exported_tiny(tmp_path)
    runner, failure = compile_generator(module, device=CPU, dtype=torch.float32, example=inputs(1),
                                        batch_sizes=[1, 4])
    assert runner is not None, failure
    assert runner.batch_sizes == [1, 4] and all(cost > 0 for cost in runner.costs.values())
    x = inputs(7, seed=1)
    with torch.no_grad():
        expected = generator(x)
    for n in (1, 2, 4, 7):  # 2 and 7 need padding or several chunks
        got = runner(x[:n])
        assert got.shape == (n, 3, SIZE, SIZE)
        np.testing.assert_allclose(got.numpy(), expected[:n].numpy(), atol=1e-4)
    np.testing.assert_array_equal(runner(x).numpy(), runner(x).numpy())


@pytest.mark.slow
def test_a_failing_compiler_gives_no_runner_and_the_reason(tmp_path):
    _, module = exported_tiny(tmp_path, ngf=5, seed=1)  # a graph no earlier test compiled
    with inductor_config.patch({"cpp.cxx": ("/nonexistent/c++",), "fx_graph_cache": False}):
        runner, failure = compile_generator(module, device=CPU, dtype=torch.float32, example=inputs(1),
                                            batch_sizes=[3])
    assert runner is None and failure


BESIDE_A_COMPILE = """
import sys, threading, time
import torch
from sketch2fashion.models.networks import GENERATOR_IN_CHANNELS, build_generator
from sketch2fashion.params import load_params
from sketch2fashion.registry.compiled import compile_generator
cpu, bf16, SIZE = torch.device("cpu"), torch.bfloat16, 64
def generator(seed):  # the project's own generator (flat fill + residual, resize decoder), small
    torch.manual_seed(seed)
    return build_generator({**load_params("params.yaml")["model"], "ngf": 8}, SIZE).eval()
example = torch.zeros(1, GENERATOR_IN_CHANNELS, SIZE, SIZE)
serving, why = compile_generator(generator(0), device=cpu, dtype=bf16, example=example, batch_sizes=[2])
assert serving is not None, why
x, stop, calls = torch.rand(2, GENERATOR_IN_CHANNELS, SIZE, SIZE), threading.Event(), [0]
def serve():
    while not stop.is_set():
        serving(x)
        calls[0] += 1
threading.Thread(target=serve, daemon=True).start()
other, why = compile_generator(generator(1), device=cpu, dtype=bf16, example=example, batch_sizes=[1, 2])
assert other is not None, why
before = calls[0]
time.sleep(0.5)
stop.set()
print("calls", before, calls[0])
"""


@pytest.mark.slow
def test_a_compile_beside_a_running_generator_finishes_and_both_keep_answering():
    """The Colorizer compiles a new champion in a thread while another thread serves batches, both
    under bf16 autocast: with autocast's cast cache on, that deadlocked (models/device.py). Run in
    a child process, so a deadlock fails this test instead of hanging the suite."""
    import subprocess
    import sys

    from waiting import HANG_SECONDS

    done = subprocess.run([sys.executable, "-c", BESIDE_A_COMPILE], capture_output=True, text=True,
                          timeout=HANG_SECONDS, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr[-3000:]
    before, after = map(int, done.stdout.split()[-2:])
    assert before > 0 and after > before  # served while the other compiled, and still serves after
