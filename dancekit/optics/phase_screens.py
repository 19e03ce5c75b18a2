"""Von Karman phase screens by FFT, with subharmonics for the low spatial frequencies.

A screen is a real tensor (ny, nx) of phase in radians at the wavelength for which ``r0`` is given
(use :func:`dancekit.optics.turbulence.r0_at_wavelength`), on a grid of spacing ``sampling`` (m/px).
"""

from __future__ import annotations

import math

import torch

from dancekit.errors import ParameterError
from dancekit.optics._validate import fried_parameter, non_negative, outer_scale, positive

#: Constant of the phase PSD, 0.0229 (quoted 0.023; Noll 1976 eq. 18, Schmidt 2010 eq. 9.52).
_PSD_CONSTANT = 0.0229


def von_karman_psd(f, r0: float, L0: float = math.inf, l0: float = 0.0) -> torch.Tensor:
    """Phase power spectral density (rad^2 m^2) of modified von Karman turbulence.

    Phi(f) = 0.023 r0^(-5/3) (f^2 + 1/L0^2)^(-11/6) exp(-(f/fm)^2), fm = 5.92 / (2 pi l0)
    (Bialek et al. 2024 eq. 1 footnote; Schmidt 2010 eq. 9.52 in cycles/m). f: spatial frequency
    (cycles/m), any shape; r0 (m) at the screen wavelength; L0 outer scale (m, inf: Kolmogorov);
    l0 inner scale (m, 0: none). The constant is 0.0229 (= 0.023 rounded in the literature).
    """
    r0 = fried_parameter(r0)
    L0 = outer_scale(L0)
    l0 = non_negative("l0", l0, "m")
    return _von_karman_psd(torch.as_tensor(f), r0, L0, l0)


def _von_karman_psd(f: torch.Tensor, r0: float, L0: float, l0: float) -> torch.Tensor:
    f2 = f * f + (0.0 if math.isinf(L0) else 1.0 / L0**2)
    psd = _PSD_CONSTANT * r0 ** (-5.0 / 3.0) * f2.clamp_min(1e-300) ** (-11.0 / 6.0)
    if l0 > 0:
        fm = 5.92 / (2 * math.pi * l0)
        psd = psd * torch.exp(-(f * f) / fm**2)
    return torch.where(f2 > 0, psd, torch.zeros_like(psd))


def _complex_normal(shape, generator: torch.Generator, device) -> torch.Tensor:
    """Unit-variance real and imaginary parts: E|c|^2 = 2. Drawn on the generator's device."""
    gen_device = generator.device if generator is not None else "cpu"
    draws = torch.randn((2, *shape), generator=generator, dtype=torch.float64, device=gen_device)
    return torch.complex(draws[0], draws[1]).to(device)


def fft_phase_screen(
    shape: tuple[int, int],
    sampling: float,
    r0: float,
    L0: float = math.inf,
    l0: float = 0.0,
    *,
    generator: torch.Generator,
    subharmonics: int | None = None,
    device=None,
    dtype=torch.float32,
) -> torch.Tensor:
    """A random von Karman phase screen (rad), shape ``(ny, nx)``, spacing ``sampling`` (m/px).

    FFT method (McGlamery 1976; Schmidt 2010 listing 9.2): complex Gaussian amplitudes of variance
    Phi(f) df_x df_y on the FFT frequency grid, real part of their Fourier sum. With
    ``subharmonics = 0`` the screen is periodic and band-limited: exactly translatable by a Fourier
    phase ramp. ``subharmonics = p > 0`` adds p levels of 3x3 subharmonics of spacing df/3^k
    (Lane, Glindemann & Dainty 1992; Johansson & Gavel 1994; Schmidt 2010 listing 9.3) for the
    frequencies below 1/(n sampling) that the FFT grid misses (the tilt and the large-scale
    structure function); their mean over the screen is removed. ``None`` (default) picks the
    fewest levels (1..10) whose lowest frequency is below 1/(10 L0): 10 for Kolmogorov (L0 = inf),
    which keeps D(r) within ~3 % of 6.88 (r/r0)^(5/3) for 4 px < r < n/4. Screens may be rectangular.
    r0 = inf gives a zero screen. ``generator``: a ``torch.Generator`` (the only randomness).
    """
    ny, nx = (int(s) for s in shape)
    if ny < 2 or nx < 2 or (ny, nx) != tuple(shape):
        raise ParameterError(f"shape = {tuple(shape)!r}: need two integers >= 2")
    sampling = positive("sampling", sampling, "m/px")
    r0, L0, l0 = fried_parameter(r0), outer_scale(L0), non_negative("l0", l0, "m")
    if subharmonics is None:
        subharmonics = default_subharmonic_levels(min(ny, nx) * sampling, L0)
    if int(subharmonics) != subharmonics or subharmonics < 0:
        raise ParameterError(f"subharmonics = {subharmonics!r}: must be an integer >= 0")
    if not isinstance(generator, torch.Generator):
        raise ParameterError("generator: pass a torch.Generator (randomness is never implicit)")
    if math.isinf(r0):
        return torch.zeros(ny, nx, device=device, dtype=dtype)
    return _fft_phase_screen(ny, nx, sampling, r0, L0, l0, generator, int(subharmonics),
                             device).to(dtype)


def default_subharmonic_levels(screen_size: float, L0: float, max_levels: int = 10) -> int:
    """Fewest subharmonic levels p (1..max_levels) with 3^p * screen_size >= 10 L0 (sizes in m)."""
    if math.isinf(L0):
        return max_levels
    levels = math.ceil(math.log(max(10 * L0 / screen_size, 1.0), 3))
    return int(min(max(levels, 1), max_levels))


def _fft_phase_screen(ny, nx, sampling, r0, L0, l0, generator, subharmonics, device):
    dfx, dfy = 1.0 / (nx * sampling), 1.0 / (ny * sampling)
    fx = torch.fft.fftfreq(nx, d=sampling, dtype=torch.float64, device=device)
    fy = torch.fft.fftfreq(ny, d=sampling, dtype=torch.float64, device=device)
    f = torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)
    psd = _von_karman_psd(f, r0, L0, l0)
    psd[0, 0] = 0.0  # the piston carries no information
    for j in (-1, 0, 1):  # the 8 cells around the origin: the PSD is too steep for a centre value
        for i in (-1, 0, 1):
            if (i, j) != (0, 0):
                psd[j % ny, i % nx] = _cell_psd(i * dfx, j * dfy, dfx, dfy, r0, L0, l0)
    amplitudes = _complex_normal((ny, nx), generator, device).mul_(psd.mul_(dfx * dfy).sqrt_())
    del psd, f
    screen = torch.fft.ifft2(amplitudes, out=amplitudes).real.mul(nx * ny)
    if subharmonics:
        screen = screen + _subharmonic_screen(ny, nx, sampling, r0, L0, l0, generator,
                                              subharmonics, device)
    return screen


def _cell_psd(fx, fy, dfx, dfy, r0, L0, l0, sub: int = 32) -> float:
    """Effective PSD of the frequency cell of size dfx x dfy centred on (fx, fy) != 0.

    The mean over the cell of Phi(f) |f|^2, divided by |f_centre|^2: each low-frequency cell then
    adds exactly its share of D(r) ~ r^2 int Phi f^2 for r |f| << 1. Lane's centre value
    Phi(f_centre) underestimates the steep PSD (D(r) ~5 % low for Kolmogorov, even with many
    levels); this weighting, in the spirit of Johansson & Gavel 1994, brings it within ~2 %.
    """
    t = (torch.arange(sub, dtype=torch.float64) + 0.5) / sub - 0.5
    f2 = (fx + t[None, :] * dfx) ** 2 + (fy + t[:, None] * dfy) ** 2
    mean = (_von_karman_psd(torch.sqrt(f2), r0, L0, l0) * f2).mean()
    return float(mean) / (fx * fx + fy * fy)


def _subharmonic_screen(ny, nx, sampling, r0, L0, l0, generator, levels, device):
    """Low-frequency screen: sum over levels p of 8 sinusoids at (m, n) df / 3^p, m, n in {-1,0,1}.

    All levels at once as the real part of Ey (ny, 3p) @ A (3p, 3p, block-diagonal) @ Ex (3p, nx),
    taken as two real matrix products: one (ny, nx) float64 array instead of two complex ones per
    level (the memory of a long screen), the same sum up to rounding.
    """
    x = torch.arange(nx, dtype=torch.float64, device=device) * sampling
    y = torch.arange(ny, dtype=torch.float64, device=device) * sampling
    offsets = torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64, device=device)
    ex_rows, ey_rows, blocks = [], [], []
    for p in range(1, levels + 1):
        dfx, dfy = 1.0 / (3**p * nx * sampling), 1.0 / (3**p * ny * sampling)
        fx, fy = offsets * dfx, offsets * dfy
        psd = torch.tensor([[0.0 if m == k == 0 else _cell_psd(k * dfx, m * dfy, dfx, dfy,
                                                              r0, L0, l0)
                             for k in (-1, 0, 1)] for m in (-1, 0, 1)],
                           dtype=torch.float64, device=device)  # [row m (y), column k (x)]
        blocks.append(_complex_normal((3, 3), generator, device) * torch.sqrt(psd * dfx * dfy))
        ex_rows.append(torch.exp(2j * math.pi * fx[:, None] * x[None, :]))  # (3, nx)
        ey_rows.append(torch.exp(2j * math.pi * fy[:, None] * y[None, :]))  # (3, ny)
    amp = torch.block_diag(*blocks)  # (3p, 3p)
    left = torch.cat(ey_rows).T  # (ny, 3p): sum_{m,n} amp[m,n] ey[m](y) ex[n](x)
    right = amp @ torch.cat(ex_rows)  # (3p, nx)
    low = left.real @ right.real - left.imag @ right.imag  # the real part, without a complex (ny, nx)
    return low - low.mean()


def structure_function(screen: torch.Tensor, separations_px) -> torch.Tensor:
    """Empirical phase structure function D(r) = <(phi(x + r) - phi(x))^2> (rad^2).

    Averaged over all pairs separated by ``r`` pixels along x and along y inside the screen (no
    wrap-around). ``screen``: (..., ny, nx); returns (..., len(separations_px)).
    """
    out = []
    for r in separations_px:
        r = int(r)
        if r <= 0 or r >= min(screen.shape[-2:]):
            raise ParameterError(f"separation {r} px: must lie in [1, {min(screen.shape[-2:]) - 1}]")
        dx = (screen[..., :, r:] - screen[..., :, :-r]).pow(2).mean(dim=(-2, -1))
        dy = (screen[..., r:, :] - screen[..., :-r, :]).pow(2).mean(dim=(-2, -1))
        out.append(0.5 * (dx + dy))
    return torch.stack(out, dim=-1)
