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
from torch.nn import functional as F


GENERATOR_IN_CHANNELS = 9  # edges, hint RGB + mask, flat fill RGB + weight; see models/inputs.py
SKETCH_CHANNELS = 5  # edges, hint RGB + mask: what the generators registered before the flat fill read
IMAGE_CHANNELS = 3
NORMS = ("batch", "instance", "none")
UPSAMPLES = ("resize", "transpose")
OUTPUTS = ("residual", "image")
MAX_AUTO_DEPTH = 8  # pix2pix's 256 px U-Net; deeper only shrinks an already 1x1 bottleneck

# Keys that `build_generator` / `build_discriminator` accept from params.yaml `model:`.
MODEL_KEYS = frozenset(
    {"ngf", "ndf", "depth", "norm", "dropout", "dropout_layers", "n_layers", "init_gain",
     "in_channels", "out_channels", "upsample", "output", "work_scale"}
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


def check_image_size(height: int, width: int, depth: int, work_scale: int = 1) -> None:
    """Raise a ValueError that says what to change when the U-Net cannot halve the image `depth`
    times (after the `work_scale` reduction)."""
    step = 2**depth * work_scale
    if height % step or width % step:
        fits = min(max_depth_for(height // work_scale), max_depth_for(width // work_scale))
        raise ValueError(
            f"UNetGenerator(depth={depth}, work_scale={work_scale}) needs height and width divisible by "
            f"{step}, got {height}x{width}. Resize the images to a multiple of {step}"
            + (f", or build the generator with depth={fits}" if fits >= 2 else "")
            + " (model.depth in params.yaml)."
        )


class UNetGenerator(nn.Module):
    """pix2pix U-Net: `depth` stride-2 downsamplings, mirrored upsamplings and skip connections.

    Input  N x in_channels x H x W (models/inputs.py), H and W divisible by work_scale * 2**depth.
    Output N x out_channels x H x W in [-1, 1] (clamped by the caller for `residual`).
    Channels per encoder level: ngf, 2ngf, 4ngf, 8ngf, 8ngf, ... (capped at 8*ngf).

    Three choices beyond the paper, each a params `model:` key:
    - `upsample: resize` (default): bilinear x2 then a 3x3 conv in the decoder instead of a 4x4
      stride-2 transposed conv, whose uneven kernel overlap prints a checkerboard into every
      photo (Odena et al., "Deconvolution and Checkerboard Artifacts", 2016).
    - `output: residual` (default): the U-Net paints a correction on top of the flat colour fill
      of the hints (imaging/flat_fill.py; white where nothing is filled). Its last layer starts
      at zero, so an untrained generator already returns the shopper's colours, and training
      only has to learn shading, detail and what to paint where no hint says. `image` is the
      paper's Tanh photo.
    - `work_scale: 2`: the U-Net runs at half the resolution and its correction is upsampled
      onto the full-resolution fill, so the garment's edges stay as sharp as the drawing while
      the network costs a quarter (shading is smooth; the fill carries the edges).
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
        upsample: str = "resize",
        output: str = "residual",
        work_scale: int = 1,
    ) -> None:
        super().__init__()
        if depth < 2:
            raise ValueError(f"UNetGenerator depth must be at least 2, got {depth}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if upsample not in UPSAMPLES:
            raise ValueError(f"upsample must be one of {UPSAMPLES}, got {upsample!r}")
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
        if output == "residual" and (in_channels < GENERATOR_IN_CHANNELS or out_channels != IMAGE_CHANNELS):
            raise ValueError(f"output 'residual' paints on the flat fill: it needs the {GENERATOR_IN_CHANNELS}-channel "
                             f"input and an RGB output, got {in_channels} -> {out_channels}")
        if work_scale not in (1, 2, 4):
            raise ValueError(f"work_scale must be 1, 2 or 4, got {work_scale}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.depth = depth
        self.residual = output == "residual"
        self.work_scale = int(work_scale)
        widths = [ngf * min(2**level, 8) for level in range(depth)]
        self.encoder = _encoder_blocks(in_channels, widths, norm)
        self.decoder = _decoder_blocks(widths, out_channels, norm, dropout, dropout_layers, upsample,
                                       self.residual)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"UNetGenerator expects N x {self.in_channels} x H x W input, got {tuple(x.shape)}"
            )
        check_image_size(x.shape[-2], x.shape[-1], self.depth, self.work_scale)
        full = x
        if self.work_scale > 1:
            x = F.avg_pool2d(x, self.work_scale)
        skips = []
        for block in self.encoder:
            x = block(x)
            skips.append(x)
        skips.pop()  # the bottleneck output feeds the decoder directly, not via a skip
        for block in self.decoder:
            x = block(x)
            if skips:
                x = torch.cat([x, skips.pop()], dim=1)
        if self.work_scale > 1:
            x = F.interpolate(x, scale_factor=float(self.work_scale), mode="bilinear", align_corners=False)
        if self.residual:
            x = fill_base(full) + x
        return x


def fill_base(x: torch.Tensor) -> torch.Tensor:
    """The flat fill as a photo: its colour where anything is filled, white paper elsewhere."""
    fill, weight = x[:, 5:8], x[:, 8:9]
    return torch.where(weight > 0, fill, torch.ones_like(fill))


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
                    dropout_layers: int, upsample: str, residual: bool) -> nn.ModuleList:
    """Innermost first, Up-Norm-[Dropout]-ReLU (the paper's CDk): block j upsamples to level
    depth-2-j, whose skip is then concatenated; the last block makes the image (Tanh) or the
    correction of the fill (no activation, zero at the start)."""
    make_norm, bias, depth = norm_layer(norm), _conv_bias(norm), len(widths)
    blocks = nn.ModuleList()
    for step in range(depth):
        level = depth - 1 - step  # the level this block upsamples from
        in_width = widths[level] if step == 0 else 2 * widths[level]
        if level == 0:
            last = _up_conv(in_width, out_channels, bias=True, how=upsample)
            layers: list[nn.Module] = [last] if residual else [last, nn.Tanh()]
        else:
            layers = [_up_conv(in_width, widths[level - 1], bias=bias, how=upsample), make_norm(widths[level - 1])]
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


class ResizeConv(nn.Sequential):
    """x2 bilinear upsampling, then a 3x3 conv: every output pixel gets the same kernel overlap."""

    def __init__(self, in_ch: int, out_ch: int, bias: bool) -> None:
        super().__init__(nn.Upsample(scale_factor=2.0, mode="bilinear", align_corners=False),
                         nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=1, padding=1, bias=bias))


def _up_conv(in_ch: int, out_ch: int, bias: bool, how: str = "transpose") -> nn.Module:
    if how == "resize":
        return ResizeConv(in_ch, out_ch, bias)
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
    work_scale = int(cfg.get("work_scale", 1))
    depth = resolve_depth(cfg.get("depth", 8), None if image_size is None else image_size // work_scale)
    if image_size is not None:
        check_image_size(image_size, image_size, depth, work_scale)
    net = UNetGenerator(
        in_channels=int(cfg.get("in_channels", GENERATOR_IN_CHANNELS)),
        out_channels=int(cfg.get("out_channels", IMAGE_CHANNELS)),
        ngf=int(cfg.get("ngf", 64)),
        depth=depth,
        norm=str(cfg.get("norm", "batch")),
        dropout=float(cfg.get("dropout", 0.5)),
        dropout_layers=int(cfg.get("dropout_layers", 3)),
        upsample=str(cfg.get("upsample", "resize")),
        output=str(cfg.get("output", "residual")),
        work_scale=work_scale,
    )
    init_weights(net, float(cfg.get("init_gain", 0.02)))
    if net.residual:  # an untrained generator returns the fill itself: the shopper's colours
        last = net.decoder[-1][0]
        conv = last[-1] if isinstance(last, ResizeConv) else last
        nn.init.zeros_(conv.weight)
        nn.init.zeros_(conv.bias)
    return net


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
