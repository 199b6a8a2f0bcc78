"""Generator / discriminator shapes, serving determinism, trainability, precision, and tensor I/O."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from sketch2fashion.models import device as device_mod
from sketch2fashion.models import (
    PatchDiscriminator,
    UNetGenerator,
    build_discriminator,
    build_generator,
    count_parameters,
    inference_autocast,
    init_weights,
    pick_device,
    prepare_for_inference,
    resolve_dtype,
    to_generator_batch,
    to_generator_input,
    to_image,
    to_images,
    to_target,
)
from sketch2fashion.models.inputs import SKETCH_PLANES, pack_sketches, unpack_sketches

TINY = {"ngf": 4, "ndf": 4, "norm": "batch", "dropout": 0.5}
PAPER = {"upsample": "transpose", "output": "image"}  # the paper's decoder and Tanh photo


def tiny_generator(depth: int, **overrides: object) -> UNetGenerator:
    torch.manual_seed(0)
    return build_generator({**TINY, "depth": depth, **overrides})


def sketch_batch(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """Random generator inputs: 9 channels in [-1, 1], a fill weight in [0, 1]."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 9, size, size, generator=generator) * 2 - 1
    x[:, 8] = (x[:, 8] > 0).float()
    return x


# --- generator ------------------------------------------------------------------------------

@pytest.mark.parametrize(("size", "depth"), [(64, 6), (256, 8)])
def test_image_generator_maps_nine_channels_to_an_rgb_image_in_range(size: int, depth: int) -> None:
    net = tiny_generator(depth, **PAPER).eval()
    with torch.no_grad():
        out = net(sketch_batch(2, size))
    assert out.shape == (2, 3, size, size)
    assert out.min() >= -1 and out.max() <= 1


def test_untrained_residual_generator_returns_the_fill_and_white_paper() -> None:
    net = tiny_generator(5, work_scale=2).eval()
    x = sketch_batch(2, 64)
    with torch.no_grad():
        out = net(x)
    filled = x[:, 8:9] > 0
    torch.testing.assert_close(out, torch.where(filled, x[:, 5:8], torch.ones_like(out)))


def test_paper_generator_is_pix2pix_unet_256() -> None:
    net = UNetGenerator(in_channels=5, **PAPER)
    assert net.depth == 8 and net.in_channels == 5
    assert 54.3e6 < count_parameters(net) < 54.5e6  # reference unet_256 has 54.4 M parameters
    with pytest.raises(ValueError, match="needs the 9-channel input"):
        UNetGenerator(in_channels=5)


def _checkerboard_share(image: torch.Tensor) -> float:
    """Share of an image's AC power at the period-2 frequencies (the checkerboard's)."""
    spectrum = torch.fft.fft2(image - image.mean(dim=(-2, -1), keepdim=True)).abs() ** 2
    n = image.shape[-1]
    nyquist = spectrum[..., n // 2, :].sum() + spectrum[..., :, n // 2].sum()
    return float(nyquist / spectrum.sum().clamp_min(1e-12))


def test_resize_convolution_decoder_prints_no_checkerboard() -> None:
    """A transposed conv with stride 2 gives output pixels uneven kernel overlap: even on a blank
    input its output carries a period-2 pattern; bilinear resize + conv does not."""
    blank = torch.zeros(1, 9, 64, 64)
    blank[:, 0] = 1.0  # white paper, no hints
    shares = {}
    for upsample in ("transpose", "resize"):
        torch.manual_seed(0)
        net = UNetGenerator(ngf=8, depth=6, norm="instance", upsample=upsample, output="image").eval()
        with torch.no_grad():
            shares[upsample] = _checkerboard_share(net(blank))
    assert shares["transpose"] > 0.02, shares
    assert shares["resize"] < shares["transpose"] / 10, shares


def test_work_scale_runs_the_unet_at_half_size_and_answers_at_full_size() -> None:
    net = tiny_generator(5, work_scale=2).eval()
    with torch.no_grad():
        assert net(sketch_batch(1, 64)).shape == (1, 3, 64, 64)
    assert build_generator({**TINY, "depth": "auto", "work_scale": 2}, image_size=256).depth == 7
    with pytest.raises(ValueError, match="work_scale=2.*divisible by 256"):
        build_generator({**TINY, "depth": 7, "work_scale": 2}, image_size=192)


def test_size_not_divisible_by_two_to_the_depth_is_a_clear_error() -> None:
    net = tiny_generator(8)
    with pytest.raises(ValueError, match=r"divisible by 256, got 64x64.*depth=6"):
        net(sketch_batch(1, 64))
    with pytest.raises(ValueError, match="divisible by 256"):
        build_generator({**TINY, "depth": 8}, image_size=96)


def test_wrong_channel_count_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="N x 9 x H x W"):
        tiny_generator(6)(torch.zeros(1, 3, 64, 64))


def test_auto_depth_is_deepest_fitting_level_up_to_eight() -> None:
    assert build_generator({**TINY, "depth": "auto"}, image_size=64).depth == 6
    assert build_generator({**TINY, "depth": "auto"}, image_size=256).depth == 8
    assert build_generator({**TINY, "depth": "auto"}, image_size=512).depth == 8
    assert build_generator({**TINY, "depth": "auto"}, image_size=96).depth == 5


def test_unknown_model_keys_are_rejected() -> None:
    with pytest.raises(ValueError, match="droput"):
        build_generator({"ngf": 4, "depth": 6, "droput": 0.5})


def test_eval_mode_is_deterministic_and_train_mode_is_not() -> None:
    net = tiny_generator(6, **PAPER)
    x = sketch_batch(2, 64)
    with torch.no_grad():
        net.train()
        first, second = net(x), net(x)
        assert not torch.equal(first, second), "dropout should make train-mode outputs differ"
        net.eval()
        first, second = net(x), net(x)
    assert torch.equal(first, second)
    assert not any(m.training for m in net.modules())


def test_eval_output_does_not_depend_on_the_rest_of_the_batch() -> None:
    net = tiny_generator(6)
    with torch.no_grad():  # give BatchNorm non-trivial running statistics first
        net.train()
        for seed in range(3):
            net(sketch_batch(4, 64, seed=seed))
        net.eval()
        batch = sketch_batch(3, 64, seed=9)
        alone = net(batch[:1])
        together = net(batch)[:1]
    torch.testing.assert_close(alone, together, atol=1e-5, rtol=0)


def test_dropout_sits_in_the_first_three_decoder_blocks_only() -> None:
    net = UNetGenerator(ngf=4, depth=8)
    with_dropout = [any(isinstance(m, nn.Dropout) for m in block) for block in net.decoder]
    assert with_dropout == [True, True, True, False, False, False, False, False]
    assert not any(isinstance(m, nn.Dropout) for m in UNetGenerator(ngf=4, depth=8, dropout=0.0).modules())


@pytest.mark.parametrize("output", ["residual", "image"])
def test_a_few_optimisation_steps_reduce_l1_on_a_tiny_batch(output: str) -> None:
    torch.manual_seed(0)
    net = build_generator({"ngf": 8, "depth": 4, "dropout": 0.0, "output": output})
    x = sketch_batch(2, 32, seed=1)
    target = torch.tanh(x[:, 1:4] + 0.5 * x[:, :1])  # a learnable colour mapping of the input
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-2, betas=(0.5, 0.999))
    losses = []
    for _ in range(40):
        loss = nn.functional.l1_loss(net(x), target)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses


def test_init_weights_uses_pix2pix_normal_init() -> None:
    torch.manual_seed(0)
    net = init_weights(UNetGenerator(ngf=16, depth=6), gain=0.02)
    conv = net.encoder[2][0]
    norm = net.encoder[2][1]
    assert conv.weight.std().item() == pytest.approx(0.02, rel=0.1)
    assert norm.weight.mean().item() == pytest.approx(1.0, abs=0.01)
    assert torch.count_nonzero(norm.bias) == 0


@pytest.mark.parametrize("norm", ["instance", "none"])
def test_other_norms_build_and_run(norm: str) -> None:
    net = tiny_generator(6, norm=norm).eval()
    with torch.no_grad():
        assert net(sketch_batch(1, 64)).shape == (1, 3, 64, 64)
    with pytest.raises(ValueError, match="norm must be one of"):
        UNetGenerator(norm="group")


def test_bf16_autocast_output_is_close_to_fp32_in_eval() -> None:
    cpu = torch.device("cpu")
    torch.manual_seed(0)
    # PyTorch's default init and tighter BatchNorm statistics give O(1) outputs, as a trained
    # generator has; pix2pix's N(0, 0.02) init would make every output ~0 and the check vacuous.
    net = UNetGenerator(ngf=8, depth=6, output="image").eval()
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_var.fill_(0.05)
    x = sketch_batch(2, 64)
    with torch.no_grad():
        reference = net(x)
        fast_net, dtype, memory_format = prepare_for_inference(net, cpu, "bf16")
        with inference_autocast(cpu, dtype):
            fast = fast_net(x.to(memory_format=memory_format))
    assert dtype == torch.bfloat16 and memory_format == torch.channels_last
    assert reference.std() > 0.3  # the outputs really span the range
    assert ((fast.float() - reference).norm() / reference.norm()).item() < 0.03
    assert np.abs(to_images(fast).astype(int) - to_images(reference).astype(int)).mean() < 2.0  # grey levels


# --- discriminator --------------------------------------------------------------------------

@pytest.mark.parametrize(("size", "patches"), [(256, 30), (64, 6)])
def test_patch_discriminator_scores_a_grid_of_patches(size: int, patches: int) -> None:
    net = build_discriminator({**TINY, "depth": 8})
    pair = torch.cat([sketch_batch(2, size), torch.rand(2, 3, size, size) * 2 - 1], dim=1)
    assert pair.shape[1] == 12
    with torch.no_grad():
        assert net(pair).shape == (2, 1, patches, patches)


def test_default_discriminator_is_the_70px_patchgan() -> None:
    net = PatchDiscriminator(in_channels=8)
    strides = [m.stride[0] for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert strides == [2, 2, 2, 1, 1]  # 70x70 receptive field with 4x4 kernels
    assert 2.7e6 < count_parameters(net) < 2.8e6


# --- tensor I/O -----------------------------------------------------------------------------

def test_generator_input_channels_follow_the_documented_conventions() -> None:
    edges = np.full((8, 8), 255, np.uint8)
    edges[2, :] = 0  # one ink line
    hint = np.zeros((8, 8, 3), np.uint8)
    hint[...] = (255, 0, 51)  # colour everywhere, but only one pixel is marked as a hint
    mask = np.zeros((8, 8), bool)
    mask[5, 5] = True
    fill = np.full((8, 8, 3), (0, 255, 0), np.uint8)
    weight = np.zeros((8, 8), np.uint8)
    weight[4:, :] = 255
    weight[3, :] = 128
    x = to_generator_input(edges, hint, mask, fill, weight)
    assert x.shape == (9, 8, 8) and x.dtype == torch.float32
    assert x[0, 2].eq(-1).all() and x[0, 0].eq(1).all()  # ink -1, paper +1
    torch.testing.assert_close(x[1:4, 5, 5], torch.tensor([1.0, -1.0, -0.6]))
    assert torch.count_nonzero(x[1:4]) == 3  # unhinted pixels carry no colour
    assert x[4].sum() == 1 and set(x[4].unique().tolist()) == {0.0, 1.0}
    assert torch.count_nonzero(x[5:8, :3]) == 0  # unfilled pixels carry no fill colour
    torch.testing.assert_close(x[5:8, 6, 0], torch.tensor([-1.0, 1.0, -1.0]))
    assert x[8, 6, 0] == 1 and x[8, 3, 0] == pytest.approx(128 / 255) and x[8, 0, 0] == 0


def test_batched_input_equals_stacked_single_inputs_and_packing_round_trips() -> None:
    rng = np.random.default_rng(0)
    edges = rng.integers(0, 256, (3, 16, 16), dtype=np.uint8)
    hints = rng.integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    masks = rng.random((3, 16, 16)) > 0.8
    fills = rng.integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    weights = rng.choice(np.array([0, 128, 255], np.uint8), (3, 16, 16))
    batch = to_generator_batch(list(edges), list(hints), list(masks), list(fills), list(weights))
    singles = torch.stack([to_generator_input(*parts) for parts in zip(edges, hints, masks, fills, weights)])
    assert torch.equal(batch, singles)
    packed = pack_sketches(edges, hints, masks, fills, weights)
    assert packed.dtype == np.uint8 and packed.shape == (3, SKETCH_PLANES, 16, 16)
    assert torch.equal(unpack_sketches(packed), batch)
    with pytest.raises(ValueError, match="uint8"):
        to_generator_input(edges[0].astype(np.float32), hints[0], masks[0], fills[0], weights[0])
    with pytest.raises(ValueError, match="uint8 N x 9"):
        unpack_sketches(packed[:, :5])


def test_photo_round_trips_through_tensor_and_back_exactly() -> None:
    photo = np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    tensor = to_target(photo)
    assert tensor.shape == (3, 16, 16) and tensor.min() >= -1 and tensor.max() <= 1
    assert np.array_equal(to_image(tensor), photo)
    assert np.abs(to_image(tensor.to(torch.bfloat16)).astype(int) - photo).max() <= 1  # bf16 outputs
    saturated = to_image(torch.stack([torch.full((4, 4), -3.0), torch.zeros(4, 4), torch.full((4, 4), 3.0)]))
    assert saturated[0, 0].tolist() == [0, 128, 255]  # clamped, and 0.0 rounds to mid-grey 128


# --- device policy ------------------------------------------------------------------------------

def test_pick_device_prefers_cuda_when_present() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert pick_device().type == expected
    assert pick_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_asking_for_missing_cuda_fails_loudly() -> None:
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        pick_device("cuda")


def test_cpu_bf16_follows_native_hardware_support(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = torch.device("cpu")
    monkeypatch.setattr(device_mod, "cpu_capabilities", lambda: {"avx512_bf16": False})
    assert resolve_dtype(cpu, "auto") == torch.float32
    monkeypatch.setattr(device_mod, "cpu_capabilities", lambda: {"amx_bf16": True})
    assert resolve_dtype(cpu, "auto") == torch.bfloat16
    assert resolve_dtype(cpu, "fp32") == torch.float32


def test_inference_autocast_turns_autocast_on_only_for_reduced_precision() -> None:
    cpu = torch.device("cpu")
    with inference_autocast(cpu, "fp32") as dtype:
        assert dtype == torch.float32 and not torch.is_autocast_enabled("cpu")
    with inference_autocast(cpu, "bf16") as dtype:
        assert dtype == torch.bfloat16 and torch.is_autocast_enabled("cpu")
    with pytest.raises(ValueError, match="dtype must be one of"):
        with inference_autocast(cpu, "int8"):
            pass


@pytest.mark.parametrize("cap, allowed", [("", True), ("AVX2", False), ("avx512_core", False),
                                          ("AVX512_CORE_BF16", True), ("AVX512_CORE_AMX", True), ("ALL", True)])
def test_a_onednn_isa_cap_below_bf16_means_fp32_like_the_laptop_it_simulates(monkeypatch, cap, allowed):
    from sketch2fashion.models import device as device_module

    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    assert device_module.onednn_allows_bf16() is allowed
    monkeypatch.setattr(device_module, "cpu_capabilities", lambda: {"avx512_bf16": True})
    expected = torch.bfloat16 if allowed and torch.backends.mkldnn.is_available() else torch.float32
    assert device_module.resolve_dtype(torch.device("cpu"), "auto") == expected
