"""Deep-Dark-Net generator and the 70x70 PatchGAN discriminator (Qu et al. 2024, sec. 2.4.2).

Generator (pix2pix ``ResnetGenerator``, Isola et al. 2017, with U-Net-style skips as in the paper;
shapes for an input (B, C, H, W) with H, W multiples of 4, width w = 64 in the paper):

    stem   ReflectionPad(3) - Conv7x7(C -> w) - Norm - ReLU              e0 (B, w,  H,   W)
    down1  Conv3x3 s2 (w -> 2w) - Norm - ReLU                            e1 (B, 2w, H/2, W/2)
    down2  Conv3x3 s2 (2w -> 4w) - Norm - ReLU                              (B, 4w, H/4, W/4)
    body   9 x ResnetBlock(4w)  [ReflPad1-Conv3x3-Norm-ReLU-ReflPad1-Conv3x3-Norm] + identity
    up1    ConvT3x3 s2 (4w -> 2w) - Norm - ReLU; cat(e1) -> Conv1x1(4w -> 2w) - ResnetBlock(2w)
    up2    ConvT3x3 s2 (2w -> w) - Norm - ReLU;  cat(e0) -> Conv1x1(2w -> w)  - ResnetBlock(w)
    head   cat(input) -> ReflectionPad(1) - Conv3x3(w + C -> 1) - Tanh     (B, 1, H, W)

The skips feed the concatenated encoder features to a residual block of the same scale (the
paper's dashed arrows). The raw input is concatenated once more before the head (our addition):
instance/batch normalisation at batch size 1 removes each feature map's mean, i.e. the absolute
dark level the strips carry; the head sees it again. Any H, W is accepted: the input is reflect-
padded to a multiple of 4 (1042 -> 1044) and the output cropped back.

The head convolution starts at zero weights (ours): an untrained generator outputs the middle
of its ADU range, i.e. for the residual targets of ``conditioning`` ("above_scaled") exactly the
physical reference, and training moves away from it only where the data say so.

The generator stores the ADU affine (``adu_offset``, ``adu_scale`` buffers): ADU = tanh * scale +
offset. ``config`` gives the constructor arguments, for checkpoints.

Discriminator: pix2pix ``NLayerDiscriminator`` (n_layers=3): 4x4 convs, strides 2, 2, 2, 1, 1,
widths 64-128-256-512-1, LeakyReLU(0.2), no norm on the first layer; it sees cat(condition,
image) and returns patch logits (no sigmoid). Its receptive field is 70 x 70 (``receptive_field``).
"""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from dancekit.errors import InputError, ParameterError

NORMS = ("batch", "instance", "none")


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False)
    return nn.Identity()


class ResnetBlock(nn.Module):
    """x + [ReflPad1-Conv3x3-Norm-ReLU-ReflPad1-Conv3x3-Norm](x) (He et al. 2016; pix2pix)."""

    def __init__(self, channels: int, norm: str, bias: bool):
        super().__init__()
        self.block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=bias), _norm(norm, channels), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=bias), _norm(norm, channels),
        )

    def forward(self, x):
        return x + self.block(x)


def _check(in_channels, width, n_blocks, norm):
    if norm not in NORMS:
        raise ParameterError(f"norm must be one of {NORMS}, got {norm!r}")
    for name, value, low in (("in_channels", in_channels, 1), ("width", width, 1), ("n_blocks", n_blocks, 0)):
        if not isinstance(value, int) or value < low:
            raise ParameterError(f"{name} must be an integer >= {low}, got {value!r}")


class DeepDarkGenerator(nn.Module):
    """Deep-Dark-Net generator: strips (B, C, H, W) -> active-area dark (B, 1, H, W) in tanh units."""

    def __init__(self, in_channels: int = 3, width: int = 64, n_blocks: int = 9, norm: str = "instance",
                 adu_offset: float = 0.0, adu_scale: float = 1.0, seed: int = 0):
        super().__init__()
        _check(in_channels, width, n_blocks, norm)
        if not adu_scale > 0:
            raise ParameterError(f"adu_scale must be > 0 ADU, got {adu_scale}")
        self._config = dict(in_channels=in_channels, width=width, n_blocks=n_blocks, norm=norm)
        bias = norm != "batch"  # batch norm has its own affine shift
        w = width
        self.stem = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(in_channels, w, 7, bias=bias), _norm(norm, w), nn.ReLU(True))
        self.down1 = nn.Sequential(nn.Conv2d(w, 2 * w, 3, stride=2, padding=1, bias=bias), _norm(norm, 2 * w), nn.ReLU(True))
        self.down2 = nn.Sequential(nn.Conv2d(2 * w, 4 * w, 3, stride=2, padding=1, bias=bias), _norm(norm, 4 * w), nn.ReLU(True))
        self.body = nn.Sequential(*[ResnetBlock(4 * w, norm, bias) for _ in range(n_blocks)])
        self.up1 = nn.Sequential(nn.ConvTranspose2d(4 * w, 2 * w, 3, stride=2, padding=1, output_padding=1, bias=bias), _norm(norm, 2 * w), nn.ReLU(True))
        self.fuse1 = nn.Sequential(nn.Conv2d(4 * w, 2 * w, 1, bias=bias), ResnetBlock(2 * w, norm, bias))
        self.up2 = nn.Sequential(nn.ConvTranspose2d(2 * w, w, 3, stride=2, padding=1, output_padding=1, bias=bias), _norm(norm, w), nn.ReLU(True))
        self.fuse2 = nn.Sequential(nn.Conv2d(2 * w, w, 1, bias=bias), ResnetBlock(w, norm, bias))
        self.head = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(w + in_channels, 1, 3), nn.Tanh())
        self.register_buffer("adu_offset", torch.tensor(float(adu_offset)))
        self.register_buffer("adu_scale", torch.tensor(float(adu_scale)))
        init_weights(self, generator=torch.Generator().manual_seed(seed))
        nn.init.zeros_(self.head[1].weight)  # starts at tanh(0): the middle of the ADU range (residual targets: the reference)

    @property
    def config(self) -> dict:
        """Constructor arguments (plain numbers), enough to rebuild the model from a checkpoint."""
        return dict(self._config, adu_offset=float(self.adu_offset), adu_scale=float(self.adu_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ph, pw = (-h) % 4, (-w) % 4
        if ph or pw:  # reflect-pad to a multiple of 4 (two stride-2 stages), cropped back below
            x = F.pad(x, (0, pw, 0, ph), mode="reflect")
        e0 = self.stem(x)                                   # (B, w, H, W)
        e1 = self.down1(e0)                                 # (B, 2w, H/2, W/2)
        z = self.body(self.down2(e1))                       # (B, 4w, H/4, W/4)
        z = self.fuse1(torch.cat([self.up1(z), e1], 1))     # (B, 2w, H/2, W/2)
        z = self.fuse2(torch.cat([self.up2(z), e0], 1))     # (B, w, H, W)
        y = self.head(torch.cat([z, x], 1))                 # (B, 1, H, W) in [-1, 1]
        return y[..., :h, :w]

    def to_adu(self, y: torch.Tensor) -> torch.Tensor:
        """Network units -> ADU with the stored affine."""
        return y * self.adu_scale + self.adu_offset


class PatchDiscriminator(nn.Module):
    """pix2pix 70x70 PatchGAN: cat(condition, image) (B, C, H, W) -> patch logits (B, 1, H', W')."""

    def __init__(self, in_channels: int = 4, width: int = 64, n_layers: int = 3, norm: str = "batch", seed: int = 0):
        super().__init__()
        _check(in_channels, width, n_layers, norm)
        self._config = dict(in_channels=in_channels, width=width, n_layers=n_layers, norm=norm)
        bias = norm != "batch"
        layers = [nn.Conv2d(in_channels, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(width * prev, width * mult, 4, stride=stride, padding=1, bias=bias),
                       _norm(norm, width * mult), nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(width * mult, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)
        init_weights(self, generator=torch.Generator().manual_seed(seed))

    @property
    def config(self) -> dict:
        return dict(self._config)

    @property
    def min_size(self) -> int:
        """Smallest image side [pixels] that leaves >= 2 x 2 patch logits."""
        return 3 * 2 ** self._config["n_layers"]

    def forward(self, condition: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        if min(image.shape[-2:]) < self.min_size:
            raise InputError(f"PatchGAN needs images of at least {self.min_size} x {self.min_size} pixels, got {tuple(image.shape[-2:])}")
        return self.model(torch.cat([condition, image], 1))


def receptive_field(module: nn.Module) -> int:
    """Receptive field [pixels] of a chain of convolutions (in module order):
    r = 1 + sum_l (k_l - 1) * d_l * prod_{m<l} s_m. 70 for the n_layers=3 PatchGAN."""
    r, jump = 1, 1
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            r += (m.kernel_size[0] - 1) * m.dilation[0] * jump
            jump *= m.stride[0]
    return r


def init_weights(module: nn.Module, gain: float = 0.02, generator: torch.Generator | None = None) -> None:
    """pix2pix 'normal' init: conv weights N(0, gain), norm weights N(1, gain), biases 0;
    drawn from ``generator`` (seeded by the caller) so a model is reproducible."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, gain, generator=generator)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, gain, generator=generator)
            nn.init.zeros_(m.bias)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
