"""The pix2pix networks: a U-Net generator and a 70x70 PatchGAN discriminator.

Architecture facts follow Isola et al., "Image-to-Image Translation with Conditional Adversarial
Networks" (2017): 4x4 convolutions with stride 2, LeakyReLU(0.2) in the encoder, ReLU in the
decoder, no norm on the first encoder layer or on the bottleneck, dropout 0.5 in the first three
decoder layers, skip connections between mirrored layers, Tanh output, N(0, 0.02) weight init.

One deliberate difference from the reference code: at serving time the generator runs in
`eval()` mode, so dropout is off and BatchNorm uses its running statistics. The reference kept
both in training mode at test time, which makes the same sketch give a different photo on every
call; a shop page must not do that.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from sketch2fashion.models.hint_fill import FILL_CHANNELS, HintFill

GENERATOR_IN_CHANNELS = 5  # edge map (1) + hint RGB (3) + hint mask (1); see models/inputs.py
IMAGE_CHANNELS = 3
NORMS = ("batch", "instance", "none")
MAX_AUTO_DEPTH = 8  # pix2pix's 256 px U-Net; deeper only shrinks an already 1x1 bottleneck

# Keys that `build_generator` / `build_discriminator` accept from params.yaml `model:`.
MODEL_KEYS = frozenset(
    {"ngf", "ndf", "depth", "norm", "dropout", "dropout_layers", "n_layers", "init_gain",
     "in_channels", "out_channels", "hint_fill"}
)


def norm_layer(norm: str) -> Callable[[int], nn.Module]:
    """Return a factory `channels -> norm module` for the named normalisation."""
    if norm == "batch":
        return lambda channels: nn.BatchNorm2d(channels)
    if norm == "instance":
        # Per-image statistics, nothing tracked: identical behaviour in train and eval mode.
        return lambda channels: nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if norm == "none":
        return lambda channels: nn.Identity()
    raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")


def _conv_bias(norm: str) -> bool:
    """A conv bias is redundant right before BatchNorm (its shift cancels it), useful otherwise."""
    return norm != "batch"


def max_depth_for(size: int) -> int:
    """The largest U-Net depth whose 2**depth divides `size` (so every level halves exactly)."""
    if size < 1:
        raise ValueError(f"image size must be positive, got {size}")
    depth = 0
    while size % 2 ** (depth + 1) == 0:
        depth += 1
    return depth


def check_image_size(height: int, width: int, depth: int) -> None:
    """Raise a ValueError that says what to change when the U-Net cannot halve the image `depth` times."""
    step = 2**depth
    if height % step or width % step:
        fits = min(max_depth_for(height), max_depth_for(width))
        raise ValueError(
            f"UNetGenerator(depth={depth}) needs height and width divisible by 2**{depth}={step}, "
            f"got {height}x{width}. Resize the images to a multiple of {step}"
            + (f", or build the generator with depth={fits}" if fits >= 2 else "")
            + " (model.depth in params.yaml)."
        )


class UNetGenerator(nn.Module):
    """pix2pix U-Net: `depth` stride-2 downsamplings, mirrored upsamplings and skip connections.

    Input  N x in_channels x H x W in [-1, 1], H and W divisible by 2**depth.
    Output N x out_channels x H x W in [-1, 1] (Tanh).
    Channels per encoder level: ngf, 2ngf, 4ngf, 8ngf, 8ngf, ... (capped at 8*ngf).
    """

    def __init__(
        self,
        in_channels: int = GENERATOR_IN_CHANNELS,
        out_channels: int = IMAGE_CHANNELS,
        ngf: int = 64,
        depth: int = 8,
        norm: str = "batch",
        dropout: float = 0.5,
        dropout_layers: int = 3,
        hint_fill: HintFill | None = None,
    ) -> None:
        super().__init__()
        if depth < 2:
            raise ValueError(f"UNetGenerator depth must be at least 2, got {depth}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.depth = depth
        self.hint_fill = hint_fill  # flat colour fill of the hints, fed beside the input
        widths = [ngf * min(2**level, 8) for level in range(depth)]
        first_in = in_channels + (FILL_CHANNELS if hint_fill is not None else 0)
        self.encoder = _encoder_blocks(first_in, widths, norm)
        self.decoder = _decoder_blocks(widths, out_channels, norm, dropout, dropout_layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"UNetGenerator expects N x {self.in_channels} x H x W input, got {tuple(x.shape)}"
            )
        check_image_size(x.shape[-2], x.shape[-1], self.depth)
        if self.hint_fill is not None:
            x = torch.cat([x, self.hint_fill(x)], dim=1)
        skips = []
        for block in self.encoder:
            x = block(x)
            skips.append(x)
        skips.pop()  # the bottleneck output feeds the decoder directly, not via a skip
        for block in self.decoder:
            x = block(x)
            if skips:
                x = torch.cat([x, skips.pop()], dim=1)
        return x


def _encoder_blocks(in_channels: int, widths: list[int], norm: str) -> nn.ModuleList:
    """Block i maps level i-1 to level i as Conv-Norm-LeakyReLU (the paper's Ck order); its
    output feeds both the next block and the skip connection to the mirrored decoder block."""
    make_norm, bias, depth = norm_layer(norm), _conv_bias(norm), len(widths)
    blocks = nn.ModuleList()
    for level, width in enumerate(widths):
        in_width = in_channels if level == 0 else widths[level - 1]
        if level == 0:  # first layer: no norm (paper, appendix)
            layers: list[nn.Module] = [_down_conv(in_width, width, bias=True), nn.LeakyReLU(0.2, inplace=True)]
        elif level == depth - 1:  # bottleneck is 1x1 at 256 px, where a norm would erase it
            layers = [_down_conv(in_width, width, bias=True), nn.ReLU(inplace=True)]
        else:
            layers = [_down_conv(in_width, width, bias=bias), make_norm(width), nn.LeakyReLU(0.2, inplace=True)]
        blocks.append(nn.Sequential(*layers))
    return blocks


def _decoder_blocks(widths: list[int], out_channels: int, norm: str, dropout: float,
                    dropout_layers: int) -> nn.ModuleList:
    """Innermost first, ConvTranspose-Norm-[Dropout]-ReLU (the paper's CDk): block j upsamples to
    level depth-2-j, whose skip is then concatenated; the last block makes the Tanh image."""
    make_norm, bias, depth = norm_layer(norm), _conv_bias(norm), len(widths)
    blocks = nn.ModuleList()
    for step in range(depth):
        level = depth - 1 - step  # the level this block upsamples from
        in_width = widths[level] if step == 0 else 2 * widths[level]
        if level == 0:
            layers: list[nn.Module] = [_up_conv(in_width, out_channels, bias=True), nn.Tanh()]
        else:
            layers = [_up_conv(in_width, widths[level - 1], bias=bias), make_norm(widths[level - 1])]
            if dropout > 0 and step < dropout_layers:
                layers.append(nn.Dropout(dropout))
            layers.append(nn.ReLU(inplace=True))
        blocks.append(nn.Sequential(*layers))
    return blocks


class PatchDiscriminator(nn.Module):
    """PatchGAN: classifies overlapping patches as real/fake; 70x70 receptive field for n_layers=3.

    Input is the generator input concatenated with a (real or generated) photo, N x (5+3) x H x W.
    Output is N x 1 x h x w raw logits (30x30 for 256 px); use BCEWithLogits or an LSGAN loss.
    """

    def __init__(
        self,
        in_channels: int = GENERATOR_IN_CHANNELS + IMAGE_CHANNELS,
        ndf: int = 64,
        n_layers: int = 3,
        norm: str = "batch",
    ) -> None:
        super().__init__()
        make_norm = norm_layer(norm)
        bias = _conv_bias(norm)
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, ndf, kernel_size=4, stride=2, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        width = ndf
        for n in range(1, n_layers + 1):
            stride = 2 if n < n_layers else 1  # the last hidden layer keeps the resolution
            next_width = ndf * min(2**n, 8)
            layers += [
                nn.Conv2d(width, next_width, kernel_size=4, stride=stride, padding=1, bias=bias),
                make_norm(next_width),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            width = next_width
        layers.append(nn.Conv2d(width, 1, kernel_size=4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def _down_conv(in_ch: int, out_ch: int, bias: bool) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=4, stride=2, padding=1, bias=bias)


def _up_conv(in_ch: int, out_ch: int, bias: bool) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(in_ch, out_ch, kernel_size=4, stride=2, padding=1, bias=bias)


def init_weights(module: nn.Module, gain: float = 0.02) -> nn.Module:
    """pix2pix init: conv weights ~ N(0, gain), norm scales ~ N(1, gain), all biases 0.

    The default PyTorch (Kaiming-uniform) init trains too, but the paper's numbers use this one.
    """
    def init_one(m: nn.Module) -> None:
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)

    module.apply(init_one)
    return module


def resolve_depth(depth: Any, image_size: int | None) -> int:
    """Turn params' `depth` (an int, or "auto" = deepest that fits `image_size`, max 8) into an int."""
    if depth in (None, "auto"):
        if image_size is None:
            raise ValueError("model.depth is 'auto': pass image_size (params image.size) to resolve it")
        resolved = min(max_depth_for(image_size), MAX_AUTO_DEPTH)
        if resolved < 2:
            raise ValueError(f"image size {image_size} is not divisible by 4; a U-Net cannot use it")
        return resolved
    return int(depth)


def build_generator(cfg: Mapping[str, Any], image_size: int | None = None) -> UNetGenerator:
    """Build and initialise the generator from params.yaml's `model:` mapping.

    `image_size` (params image.size), when given, resolves `depth: auto` and checks the size now
    rather than at the first forward pass.
    """
    _check_keys(cfg)
    depth = resolve_depth(cfg.get("depth", 8), image_size)
    if image_size is not None:
        check_image_size(image_size, image_size, depth)
    net = UNetGenerator(
        in_channels=int(cfg.get("in_channels", GENERATOR_IN_CHANNELS)),
        out_channels=int(cfg.get("out_channels", IMAGE_CHANNELS)),
        ngf=int(cfg.get("ngf", 64)),
        depth=depth,
        norm=str(cfg.get("norm", "batch")),
        dropout=float(cfg.get("dropout", 0.5)),
        dropout_layers=int(cfg.get("dropout_layers", 3)),
        hint_fill=_hint_fill(cfg.get("hint_fill")),
    )
    return init_weights(net, float(cfg.get("init_gain", 0.02)))  # type: ignore[return-value]


def _hint_fill(cfg: Any) -> HintFill | None:
    """params `model.hint_fill`: false/absent = off, true = defaults, or a mapping {steps, scale}."""
    if not cfg:
        return None
    if cfg is True:
        return HintFill()
    unknown = set(cfg) - {"steps", "scale"}
    if unknown:
        raise ValueError(f"params model.hint_fill: unknown key(s) {sorted(unknown)}; accepted: steps, scale")
    return HintFill(**{k: int(v) for k, v in cfg.items()})


def build_discriminator(cfg: Mapping[str, Any]) -> PatchDiscriminator:
    """Build and initialise the PatchGAN from params.yaml's `model:` mapping."""
    _check_keys(cfg)
    in_channels = int(cfg.get("in_channels", GENERATOR_IN_CHANNELS)) + int(
        cfg.get("out_channels", IMAGE_CHANNELS)
    )
    net = PatchDiscriminator(
        in_channels=in_channels,
        ndf=int(cfg.get("ndf", 64)),
        n_layers=int(cfg.get("n_layers", 3)),
        norm=str(cfg.get("norm", "batch")),
    )
    return init_weights(net, float(cfg.get("init_gain", 0.02)))  # type: ignore[return-value]


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters; logged with each run so model size is visible in MLflow."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def _check_keys(cfg: Mapping[str, Any]) -> None:
    """Catch typos such as `droput: 0.5`, which would otherwise silently fall back to a default."""
    unknown = set(cfg) - MODEL_KEYS
    if unknown:
        raise ValueError(
            f"params model: unknown key(s) {sorted(unknown)}; accepted: {sorted(MODEL_KEYS)}"
        )
