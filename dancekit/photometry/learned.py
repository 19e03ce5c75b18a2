"""AZP-RC: the learned zero-point correction network of seed 003, small enough for a CPU.

Three branches (seed 003 §3.2), fused by an MLP into one scalar per exposure:

* CFE, convolutional feature extractor on a 256×256 image patch (B, 1, S, S):
  Conv3×3-ReLU → MaxPool2 → Conv3×3-ReLU → global average pool → Dense(64). The article uses
  64 and 128 filters at stride 1; the default here is 8 and 16 filters (``cnn_channels``) and a
  first convolution of stride 2 (``cnn_stride``) so that a few hundred exposures train in
  minutes on two CPU cores (stride 1 costs ~5× more: 66 against 14 ms per sample and training step, one thread).
* RCE, recurrent catalogue encoder on the matched-star table (B, N, F): a bidirectional GRU
  (hidden 64 per direction) with attention pooling over the valid stars (padding masked).
* TM, telemetry MLP (B, 4) → 32: three layers.

Fusion: concat(64, 128, 32) → 128 → 64 → 32 → 1 (the article's 128 → 64 → 32 stack).

Loss (seed 003 §3.3): MSE + λ·ranking penalty, λ = 0.1, the penalty being the fraction of
ordered pairs whose predicted and true offsets are discordant. The indicator has no gradient:
training uses its logistic relaxation σ(−(ŷᵢ−ŷⱼ)(yᵢ−yⱼ)/τ), which tends to it as τ → 0.
Domain adaptation (§3.4): an optional discriminator on the fused features behind a gradient
reversal layer (Ganin & Lempitsky 2015), weight α = 0.01; the article feeds the discriminator
the predicted offset, its commentary the latent features — the latent version is used here,
since a discriminator on the target itself would push the two surveys' true offsets together.

Branches can be switched off (``use_image``/``use_stars``/``use_telemetry``): the image-only
CNN baseline is ``AZPRC(use_stars=False, use_telemetry=False)``.
"""

from __future__ import annotations

import torch
from torch import nn

from dancekit.errors import ParameterError

STAR_FEATURES = 7  # see learned_data.star_table
TELEMETRY_FEATURES = 4  # airmass, temperature, humidity, wind


class AZPRC(nn.Module):
    """The AZP-RC network. ``config`` (a plain dict) rebuilds it: ``AZPRC(**config)``."""

    def __init__(self, *, cnn_channels=(8, 16), cnn_stride: int = 2, image_features: int = 64, gru_hidden: int = 64,
                 telemetry_hidden: int = 32, star_features: int = STAR_FEATURES,
                 telemetry_features: int = TELEMETRY_FEATURES, use_image: bool = True,
                 use_stars: bool = True, use_telemetry: bool = True, domain_classes: int = 0):
        super().__init__()
        if not (use_image or use_stars or use_telemetry):
            raise ParameterError("at least one of use_image, use_stars, use_telemetry must be True")
        c1, c2 = (int(c) for c in cnn_channels)
        if min(c1, c2, image_features, gru_hidden, telemetry_hidden) < 1:
            raise ParameterError("every width must be >= 1")
        if cnn_stride not in (1, 2, 4):
            raise ParameterError(f"cnn_stride must be 1, 2 or 4, got {cnn_stride!r}")
        self.config = dict(cnn_channels=[c1, c2], cnn_stride=int(cnn_stride), image_features=image_features, gru_hidden=gru_hidden,
                           telemetry_hidden=telemetry_hidden, star_features=star_features,
                           telemetry_features=telemetry_features, use_image=use_image,
                           use_stars=use_stars, use_telemetry=use_telemetry, domain_classes=domain_classes)
        fused = 0
        if use_image:
            self.cfe = nn.Sequential(
                nn.Conv2d(1, c1, 3, stride=cnn_stride, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                nn.Linear(c2, image_features), nn.ReLU(),
            )
            fused += image_features
        if use_stars:
            self.gru = nn.GRU(star_features, gru_hidden, batch_first=True, bidirectional=True)
            self.attention = nn.Linear(2 * gru_hidden, 1)
            fused += 2 * gru_hidden
        if use_telemetry:
            self.tm = nn.Sequential(
                nn.Linear(telemetry_features, telemetry_hidden), nn.ReLU(),
                nn.Linear(telemetry_hidden, telemetry_hidden), nn.ReLU(),
                nn.Linear(telemetry_hidden, telemetry_hidden), nn.ReLU(),
            )
            fused += telemetry_hidden
        self.head = nn.Sequential(
            nn.Linear(fused, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(),
            nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 1),
        )
        self.discriminator = None
        if domain_classes >= 2:
            self.discriminator = nn.Sequential(nn.Linear(fused, 32), nn.ReLU(), nn.Linear(32, domain_classes))

    def encode(self, image, stars, lengths, telemetry) -> torch.Tensor:
        """Fused features (B, D). image (B, 1, S, S); stars (B, N, F) zero-padded; lengths (B,)
        number of valid stars (>= 1); telemetry (B, 4). Unused branches may get None."""
        parts = []
        if self.config["use_image"]:
            parts.append(self.cfe(image))  # (B, 64)
        if self.config["use_stars"]:
            parts.append(self._encode_stars(stars, lengths))  # (B, 128)
        if self.config["use_telemetry"]:
            parts.append(self.tm(telemetry))  # (B, 32)
        return torch.cat(parts, dim=1)

    def _encode_stars(self, stars, lengths):
        lengths = lengths.clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(stars, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.gru(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=stars.shape[1])  # (B, N, 2H)
        valid = torch.arange(stars.shape[1], device=stars.device)[None, :] < lengths.to(stars.device)[:, None]
        scores = self.attention(out).squeeze(-1).masked_fill(~valid, float("-inf"))  # (B, N)
        weights = torch.softmax(scores, dim=1)
        return (weights.unsqueeze(-1) * out).sum(dim=1)  # (B, 2H)

    def forward(self, image, stars, lengths, telemetry, return_features: bool = False):
        """Predicted (normalised) offset (B,); with ``return_features`` also the fused features."""
        features = self.encode(image, stars, lengths, telemetry)
        prediction = self.head(features).squeeze(-1)
        return (prediction, features) if return_features else prediction


class _GradientReversal(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale):
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.scale * grad, None


def gradient_reversal(x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Identity forward, gradient multiplied by −scale backward (Ganin & Lempitsky 2015)."""
    return _GradientReversal.apply(x, float(scale))


def pairwise_ranking_penalty(prediction, target, temperature: float = 0.0) -> torch.Tensor:
    """Fraction of ordered pairs i ≠ j whose predictions are ordered against the targets
    (seed 003 eq. of §3.3): (1 / N(N−1)) Σ_{i≠j} 1[(ŷᵢ−ŷⱼ)(yᵢ−yⱼ) < 0].

    temperature : 0 gives the exact indicator (no gradient); τ > 0 its logistic relaxation
    σ(−(ŷᵢ−ŷⱼ)(yᵢ−yⱼ)/τ) (units of prediction × target), differentiable, used for training.
    """
    prediction = torch.as_tensor(prediction).reshape(-1)
    target = torch.as_tensor(target, dtype=prediction.dtype).reshape(-1)
    if prediction.shape != target.shape:
        raise ParameterError(f"prediction and target must have the same length, got {prediction.numel()} and {target.numel()}")
    if temperature < 0:
        raise ParameterError(f"temperature must be >= 0, got {temperature!r}")
    n = prediction.numel()
    if n < 2:
        return prediction.sum() * 0.0
    product = (prediction[:, None] - prediction[None, :]) * (target[:, None] - target[None, :])
    off_diagonal = ~torch.eye(n, dtype=torch.bool, device=prediction.device)
    if temperature == 0:
        discordant = (product < 0).to(prediction.dtype)
    else:
        discordant = torch.sigmoid(-product / temperature)
    return discordant[off_diagonal].mean()


def zeropoint_loss(prediction, target, *, ranking_weight: float = 0.1, temperature: float = 0.05):
    """MSE + λ · relaxed ranking penalty (seed 003 §3.3, λ = 0.1); inputs normalised offsets."""
    mse = torch.mean((prediction - target) ** 2)
    if ranking_weight == 0:
        return mse
    return mse + ranking_weight * pairwise_ranking_penalty(prediction, target, temperature)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
