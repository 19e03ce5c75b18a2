"""Deep-Dark-Net training: one generator/discriminator update, an epoch loop, prediction.

Losses (Qu et al. 2024, sec. 2.5, eq. 3-5; "Deep-Dark-Net" row of their table 2). With s = D(x, .)
the discriminator's patch logits:

    L_D = 1/2 [ mean (s(x, y) - 1)^2 + mean s(x, G(x))^2 ]                   (MSE / LSGAN, D)
    L_G = w_bce * BCEWithLogits(s(x, G(x)), 1) + w_mse * mean (s(x, G(x)) - 1)^2
          + w_l1 * mean |G(x) - y|                                           (BCE + MSE + L1, G)

The paper writes only the real term of L_D; the fake term (target 0) is the standard LSGAN
discriminator loss without which D has nothing to learn. ``discriminator_loss="bce"`` is pix2pix's
``1/2 [BCE(s(x, y), 1) + BCE(s(x, G(x)), 0)]`` (the paper's table 2, configurations 1 and 3). The paper gives no weights: defaults
follow pix2pix (adversarial 1, L1 100). D has no sigmoid, so the BCE takes logits. Optimiser:
Adam, lr 2e-5 (paper), betas (0.5, 0.999) (pix2pix); batch size 1 (paper). D is updated first,
then G, as in pix2pix. Tensors here are in network units (see ``conditioning.AduScaling``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from dancekit.dark.networks import DeepDarkGenerator, PatchDiscriminator
from dancekit.errors import InputError, ParameterError


@dataclass(frozen=True)
class GanLossWeights:
    """Weights of the generator loss terms (dimensionless)."""

    bce: float = 1.0  # adversarial BCE-with-logits term
    mse: float = 1.0  # adversarial least-squares term
    l1: float = 100.0  # reconstruction term (pix2pix lambda_L1)

    def __post_init__(self):
        for name in ("bce", "mse", "l1"):
            if not getattr(self, name) >= 0:
                raise ParameterError(f"loss weight {name} must be >= 0, got {getattr(self, name)}")


def make_optimizers(generator: DeepDarkGenerator, discriminator: PatchDiscriminator, lr: float = 2e-5,
                    betas: tuple[float, float] = (0.5, 0.999)) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    """Adam for G and D (Qu et al. 2024 sec. 3.1: lr 2e-5; betas from pix2pix)."""
    if not lr > 0:
        raise ParameterError(f"learning rate must be > 0, got {lr}")
    return (torch.optim.Adam(generator.parameters(), lr=lr, betas=betas),
            torch.optim.Adam(discriminator.parameters(), lr=lr, betas=betas))


def _check_pair(condition: torch.Tensor, target: torch.Tensor) -> None:
    if condition.ndim != 4 or target.ndim != 4 or target.shape[1] != 1:
        raise InputError(f"expected condition (B, C, H, W) and target (B, 1, H, W), got {tuple(condition.shape)} and {tuple(target.shape)}")
    if condition.shape[0] != target.shape[0] or condition.shape[-2:] != target.shape[-2:]:
        raise InputError(f"condition {tuple(condition.shape)} and target {tuple(target.shape)} differ in batch or image size")


def train_step(generator: DeepDarkGenerator, discriminator: PatchDiscriminator, opt_g: torch.optim.Optimizer,
               opt_d: torch.optim.Optimizer, condition: torch.Tensor, target: torch.Tensor,
               weights: GanLossWeights = GanLossWeights(), discriminator_loss: str = "mse") -> dict[str, float]:
    """One D update then one G update on a batch. condition (B, C, H, W), target (B, 1, H, W),
    network units; ``discriminator_loss`` "mse" (least squares) or "bce". Returns the losses
    (before the updates) as floats: d, g_bce, g_mse, g_l1, g; with both adversarial weights 0
    only g_l1 and g (D is neither used nor updated)."""
    _check_pair(condition, target)
    if discriminator_loss not in ("mse", "bce"):
        raise ParameterError(f"discriminator_loss must be 'mse' or 'bce', got {discriminator_loss!r}")
    generator.train()
    fake = generator(condition)
    if weights.bce == 0 and weights.mse == 0:  # no adversarial term (the "L1 only" ablation): D is not trained
        opt_g.zero_grad(set_to_none=True)
        g_l1 = F.l1_loss(fake, target)
        (weights.l1 * g_l1).backward()
        opt_g.step()
        return {"g_l1": g_l1.item(), "g": weights.l1 * g_l1.item()}
    discriminator.train()

    # discriminator: real -> 1, fake -> 0 (least squares)
    for p in discriminator.parameters():
        p.requires_grad_(True)
    opt_d.zero_grad(set_to_none=True)
    s_real = discriminator(condition, target)
    s_fake = discriminator(condition, fake.detach())
    criterion = F.mse_loss if discriminator_loss == "mse" else F.binary_cross_entropy_with_logits
    loss_d = 0.5 * (criterion(s_real, torch.ones_like(s_real)) + criterion(s_fake, torch.zeros_like(s_fake)))
    loss_d.backward()
    opt_d.step()

    # generator: fool D (BCE + MSE) and match the target (L1)
    for p in discriminator.parameters():
        p.requires_grad_(False)
    opt_g.zero_grad(set_to_none=True)
    s = discriminator(condition, fake)
    ones = torch.ones_like(s)
    g_bce = F.binary_cross_entropy_with_logits(s, ones)
    g_mse = F.mse_loss(s, ones)
    g_l1 = F.l1_loss(fake, target)
    loss_g = weights.bce * g_bce + weights.mse * g_mse + weights.l1 * g_l1
    loss_g.backward()
    opt_g.step()
    for p in discriminator.parameters():
        p.requires_grad_(True)
    return {"d": loss_d.item(), "g_bce": g_bce.item(), "g_mse": g_mse.item(), "g_l1": g_l1.item(), "g": loss_g.item()}


def train_epoch(generator: DeepDarkGenerator, discriminator: PatchDiscriminator, opt_g: torch.optim.Optimizer,
                opt_d: torch.optim.Optimizer, conditions: torch.Tensor, targets: torch.Tensor,
                weights: GanLossWeights = GanLossWeights(), rng: torch.Generator | None = None,
                batch_size: int = 1) -> dict[str, float]:
    """One pass over (N, C, H, W) conditions and (N, 1, H, W) targets in a random order drawn from
    ``rng`` (a seeded torch.Generator; None keeps the given order). Returns the mean losses."""
    _check_pair(conditions, targets)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ParameterError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    n = conditions.shape[0]
    order = torch.randperm(n, generator=rng) if rng is not None else torch.arange(n)
    device = next(generator.parameters()).device
    totals: dict[str, float] = {}
    steps = 0
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        losses = train_step(generator, discriminator, opt_g, opt_d, conditions[idx].to(device), targets[idx].to(device), weights)
        for k, v in losses.items():
            totals[k] = totals.get(k, 0.0) + v
        steps += 1
    return {k: v / steps for k, v in totals.items()}


@torch.no_grad()
def reconstruction_l1(generator: DeepDarkGenerator, conditions: torch.Tensor, targets: torch.Tensor) -> float:
    """Mean |G(x) - y| over a set, network units, in eval mode (validation)."""
    _check_pair(conditions, targets)
    was_training = generator.training
    generator.eval()
    device = next(generator.parameters()).device
    total = sum(float((generator(conditions[i:i + 1].to(device)) - targets[i:i + 1].to(device)).abs().mean())
                for i in range(conditions.shape[0]))
    generator.train(was_training)
    return total / conditions.shape[0]


def predict_dark(generator: DeepDarkGenerator, inputs: np.ndarray | torch.Tensor, workers: int | None = None) -> np.ndarray:
    """Predicted active-area dark [ADU] (N, h, w) float32 from generator inputs (N, C, h, w) in
    network units (``conditioning.network_inputs``), one channel at a time, in eval mode.

    On the CPU the channels run concurrently, ``workers`` of them (default: torch's thread count)
    with one intra-op thread each: the narrow convolutions of a small generator scale poorly over
    threads within one image, so 2 channels at once on 2 cores are ~1.5x faster than one channel
    on 2 threads (``benchmarks/bench_predict_dark.py``). The results do not depend on ``workers``
    beyond float rounding."""
    x = torch.as_tensor(np.asarray(inputs, dtype=np.float32)) if not torch.is_tensor(inputs) else inputs.float()
    if x.ndim != 4 or x.shape[1] != generator.config["in_channels"]:
        raise InputError(f"generator inputs must be (N, {generator.config['in_channels']}, h, w), got {tuple(x.shape)}")
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise ParameterError(f"workers must be None or an integer >= 1, got {workers!r}")
    was_training = generator.training
    generator.eval()
    device = next(generator.parameters()).device
    threads = torch.get_num_threads()
    workers = min(x.shape[0], threads if workers is None else workers) if device.type == "cpu" else 1

    def one(i: int, single_thread: bool) -> np.ndarray:
        if single_thread:
            torch.set_num_threads(1)
        with torch.inference_mode():
            return generator.to_adu(generator(x[i:i + 1].to(device)))[0, 0].cpu().numpy()

    try:
        if workers > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(workers) as pool:
                out = list(pool.map(lambda i: one(i, True), range(x.shape[0])))
        else:
            out = [one(i, False) for i in range(x.shape[0])]
    finally:
        torch.set_num_threads(threads)
        generator.train(was_training)
    return np.stack(out).astype(np.float32)
