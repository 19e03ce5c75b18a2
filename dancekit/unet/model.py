"""The residual-encoder U-Net of DanceCam, written out top to bottom.

Architecture (Bialek et al. 2024, MNRAS 531, 403, §2.2.1 and Fig. 3), following the
``ResidualEncoderUNet`` of MIC-DKFZ's dynamic-network-architectures v0.4.4 (Apache-2.0; this
is a re-implementation, not a copy):

    input (B, T, H, W): T video frames as channels (Anscombe-transformed, background removed)
    stem            3x3 conv -> InstanceNorm -> LeakyReLU                       (B, F0, H, W)
    encoder stage s residual basic blocks (ResNet-D); the first conv of the first block
                    carries the stride s_s (downsampling), its shortcut is AvgPool + 1x1 conv
                                                                  (B, F_s, H / S_s, W / S_s)
    decoder stage d transposed conv (kernel = stride) up to the resolution of the skip,
                    concatenate with the skip, then conv -> norm -> LeakyReLU (x n)
    heads           one 1x1 conv per decoder stage (deep supervision)         (B, 1, h, w)

``S_s`` is the product of the strides up to stage s. ``forward`` returns the full-resolution
output (B, out, H / s_0, W / s_0), or, when ``deep_supervision`` is on, the list of all head
outputs ordered from the highest resolution to the lowest, as the reference library does
(independently of train/eval mode; switch it off for inference with ``model.deep_supervision
= False``, or take element 0).

Module names reproduce the reference library's ``state_dict`` keys exactly, so DanceCam's
published weights load with ``load_state_dict(strict=True)``. Two of those names are aliases
kept only for that purpose: ``ConvNormAct.all_modules`` holds the same conv/norm/activation
modules as ``conv``/``norm``/``nonlin``, and ``Decoder.encoder`` is the model's encoder again.
Parameters are shared, so ``parameters()`` lists each once and ``torch.save`` stores each once.
"""

from __future__ import annotations

import torch
from torch import nn

from dancekit.errors import ParameterError
from dancekit.unet.config import UNetConfig


class ConvNormAct(nn.Module):
    """conv -> InstanceNorm -> LeakyReLU (activation optional). Reference: ConvDropoutNormReLU."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, bias: bool,
                 config: UNetConfig, activation: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, padding=(kernel - 1) // 2, bias=bias)
        self.norm = nn.InstanceNorm2d(c_out, eps=1e-5, affine=config.norm_affine)
        ops: list[nn.Module] = [self.conv, self.norm]
        if activation:
            self.nonlin = nn.LeakyReLU(config.negative_slope)
            ops.append(self.nonlin)
        self.all_modules = nn.Sequential(*ops)  # alias of the above, for the reference keys

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.all_modules(x)  # (B, c_out, H / stride, W / stride)


class BasicBlock(nn.Module):
    """Residual basic block, ResNet-D flavour (He et al. 2019). Reference: BasicBlockD.

    out = LeakyReLU( norm(conv2( LeakyReLU(norm(conv1(x))) )) + shortcut(x) ), where the
    shortcut is the identity, or AvgPool(stride) and/or 1x1 conv -> norm when the block
    changes resolution or channel count (DanceCam eq. in §2.2.1: W is this shortcut).
    """

    def __init__(self, c_in: int, c_out: int, stride: int, config: UNetConfig):
        super().__init__()
        k, bias = config.kernel_size, config.conv_bias
        self.conv1 = ConvNormAct(c_in, c_out, k, stride, bias, config)
        self.conv2 = ConvNormAct(c_out, c_out, k, 1, bias, config, activation=False)
        self.nonlin2 = nn.LeakyReLU(config.negative_slope)
        shortcut: list[nn.Module] = []
        if stride != 1:
            shortcut.append(nn.AvgPool2d(stride, stride))
        if c_in != c_out:  # the reference never gives this 1x1 conv a bias
            shortcut.append(ConvNormAct(c_in, c_out, 1, 1, False, config, activation=False))
        self.skip = nn.Sequential(*shortcut) if shortcut else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, c_in, H, W)
        residual = self.skip(x)                          # (B, c_out, H / s, W / s)
        out = self.conv2(self.conv1(x))                  # (B, c_out, H / s, W / s)
        return self.nonlin2(out + residual)


class ResidualStage(nn.Module):
    """n basic blocks; only the first one strides. Reference: StackedResidualBlocks."""

    def __init__(self, n_blocks: int, c_in: int, c_out: int, stride: int, config: UNetConfig):
        super().__init__()
        self.blocks = nn.Sequential(
            BasicBlock(c_in, c_out, stride, config),
            *[BasicBlock(c_out, c_out, 1, config) for _ in range(n_blocks - 1)],
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


class ConvStack(nn.Module):
    """n x (conv -> norm -> LeakyReLU) at one resolution. Reference: StackedConvBlocks."""

    def __init__(self, n_convs: int, c_in: int, c_out: int, config: UNetConfig):
        super().__init__()
        k, bias = config.kernel_size, config.conv_bias
        self.convs = nn.Sequential(
            ConvNormAct(c_in, c_out, k, 1, bias, config),
            *[ConvNormAct(c_out, c_out, k, 1, bias, config) for _ in range(n_convs - 1)],
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convs(x)


class Encoder(nn.Module):
    """Stem then residual stages; returns every stage's output (the skips), finest first."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        f = config.features
        self.stem = ConvStack(1, config.in_channels, f[0], config)
        self.stages = nn.Sequential(*[
            ResidualStage(config.blocks_per_stage[s], f[s - 1] if s else f[0], f[s], config.strides[s], config)
            for s in range(config.n_stages)
        ])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:  # x: (B, T, H, W)
        x = self.stem(x)                                        # (B, F0, H, W)
        skips = []
        for stage in self.stages:
            x = stage(x)                                        # (B, F_s, H / S_s, W / S_s)
            skips.append(x)
        return skips


class Decoder(nn.Module):
    """Upsample, concatenate the skip, convolve; one 1x1 head per stage. Reference: UNetDecoder.

    Decoder stage d (d = 0 is the coarsest) works at the resolution of encoder stage
    ``n_stages - 2 - d`` and has that stage's feature count.
    """

    def __init__(self, encoder: Encoder, config: UNetConfig):
        super().__init__()
        self.encoder = encoder  # alias, only so that the state_dict keys match the reference
        self.deep_supervision = config.deep_supervision
        f, n = config.features, config.n_stages
        self.transpconvs = nn.ModuleList()
        self.stages = nn.ModuleList()
        self.seg_layers = nn.ModuleList()
        for d in range(n - 1):
            below, skip, stride = f[n - 1 - d], f[n - 2 - d], config.strides[n - 1 - d]
            self.transpconvs.append(nn.ConvTranspose2d(below, skip, stride, stride, bias=config.conv_bias))
            self.stages.append(ConvStack(config.decoder_convs_per_stage[d], 2 * skip, skip, config))
            self.seg_layers.append(nn.Conv2d(skip, config.out_channels, 1, 1, 0, bias=True))

    def forward(self, skips: list[torch.Tensor]) -> torch.Tensor | list[torch.Tensor]:
        x = skips[-1]                                     # bottleneck (B, F_n-1, H / S, W / S)
        outputs = []
        last = len(self.stages) - 1
        for d, (up, convs, head) in enumerate(zip(self.transpconvs, self.stages, self.seg_layers)):
            x = up(x)                                     # (B, F_skip, h, w): 'stride' x finer
            x = torch.cat((x, skips[-(d + 2)]), dim=1)    # (B, 2 F_skip, h, w)
            x = convs(x)                                  # (B, F_skip, h, w)
            if self.deep_supervision or d == last:
                outputs.append(head(x))                   # (B, out_channels, h, w)
        outputs.reverse()                                 # highest resolution first
        return outputs if self.deep_supervision else outputs[0]


class ResidualEncoderUNet(nn.Module):
    """DanceCam's U-Net: (B, T, H, W) frames -> (B, out, H, W) image (or the deep-supervision list).

    H and W must be multiples of ``config.total_stride``.
    """

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(self.encoder, config)

    @property
    def deep_supervision(self) -> bool:
        return self.decoder.deep_supervision

    @deep_supervision.setter
    def deep_supervision(self, on: bool) -> None:
        self.decoder.deep_supervision = bool(on)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        if x.ndim != 4 or x.shape[1] != self.config.in_channels:
            raise ParameterError(
                f"U-Net input must be (batch, {self.config.in_channels} frames, H, W), got {tuple(x.shape)}"
            )
        stride = self.config.total_stride
        if x.shape[2] % stride or x.shape[3] % stride:
            raise ParameterError(
                f"U-Net input H x W = {x.shape[2]} x {x.shape[3]} must be multiples of the total stride {stride}"
            )
        return self.decoder(self.encoder(x))


def build_unet(config: UNetConfig | None = None, *, seed: int | torch.Generator = 0) -> ResidualEncoderUNet:
    """Build the U-Net with He-normal weights (negative slope of LeakyReLU, He et al. 2015),
    zero biases, as nnU-Net's ``InitWeights_He(1e-2)``; with an affine norm, the last norm of
    each residual branch starts at zero (the block starts as its shortcut).

    ``seed`` (int or ``torch.Generator``) makes the weights reproducible; torch's global random
    state is left untouched. ``config`` defaults to the small CPU configuration ``UNetConfig()``.
    """
    config = UNetConfig() if config is None else config
    if not isinstance(config, UNetConfig):
        raise ParameterError(f"config must be a UNetConfig, got {type(config).__name__}")
    if isinstance(seed, torch.Generator):
        generator = seed
    elif isinstance(seed, int) and not isinstance(seed, bool):
        generator = torch.Generator().manual_seed(seed)
    else:
        raise ParameterError(f"seed must be an int or a torch.Generator, got {seed!r}")
    with torch.random.fork_rng(devices=[]):  # the default init draws from the global stream
        model = ResidualEncoderUNet(config)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(module.weight, a=1e-2, generator=generator)
                if module.bias is not None:
                    module.bias.zero_()
            if isinstance(module, BasicBlock) and module.conv2.norm.weight is not None:
                module.conv2.norm.weight.zero_()
    return model


def count_parameters(model: nn.Module, *, trainable_only: bool = True) -> int:
    """Number of distinct parameters (shared ones once); DanceCam's network has 28,185,545."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
