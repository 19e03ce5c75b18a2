"""Expected variance of reconstructed Zernike modes: turbulence + remaining error, tabulated in L0.

With ``b = a_F + C a_R`` (Morujão et al. 2023 eq. 9) the variance of reconstructed mode ``i`` is
``<a_i^2> + sigma_cc,i + sigma_noise,i`` (eq. 13) with the remaining (aliasing + cross-talk) error

    sigma_cc,i = sum_{j,l in R} C_ij C_il <a_j a_l> + 2 sum_{j in R} C_ij <a_i a_j>     (eq. 15)

Both terms scale as ``(D/r0)^(5/3)`` times a function of ``D/L0``, so :class:`ModalModel` tabulates
them once per geometry on a grid in ``ln L0`` (exact closed-form values at the nodes, cubic spline
in between) and a fit only rescales. Tables are cached per (modes, C, D, L0 range).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from scipy.interpolate import CubicSpline

from dancekit.ao.covariance import normalised_covariance_matrix
from dancekit.ao.shack_hartmann import cross_talk_matrix, interaction_matrix
from dancekit.ao.zernike import n_modes_to_order
from dancekit.errors import ParameterError


def remaining_error(cross_talk: np.ndarray, cov_controlled_higher: np.ndarray,
                    cov_higher: np.ndarray) -> np.ndarray:
    """Remaining error sigma_cc [rad^2] per controlled mode (Morujão et al. 2023 eq. 15).

    ``cross_talk`` C (F, R); ``cov_controlled_higher`` <a_F a_R> (F, R); ``cov_higher`` (R, R).
    The cross term can make it negative.
    """
    c = np.asarray(cross_talk, dtype=float)
    return np.einsum("ij,jl,il->i", c, cov_higher, c) + 2.0 * np.einsum("ij,ij->i", c, cov_controlled_higher)


def naomi_cross_talk(controlled_noll=tuple(range(2, 16)), max_radial_order: int = 8,
                     diameter: float = 1.8, **geometry) -> tuple[np.ndarray, np.ndarray]:
    """C = pinv(G_F) G_R of the project's geometric SH model (4x4, 12 subapertures, 7.7 %).

    Returns ``(C, higher_noll)`` with ``higher_noll`` the Noll modes above the controlled ones up to
    ``max_radial_order`` (45 modes at order 8). ``geometry`` goes to
    :func:`dancekit.ao.shack_hartmann.interaction_matrix`.
    """
    controlled = [int(j) for j in controlled_noll]
    j_max = n_modes_to_order(max_radial_order)
    higher = np.arange(max(controlled) + 1, j_max + 1)
    if len(higher) == 0:
        raise ParameterError(
            f"max_radial_order {max_radial_order} (Noll <= {j_max}) must exceed the controlled modes "
            f"(Noll <= {max(controlled)})")
    g_all = interaction_matrix(list(controlled) + list(higher), diameter=diameter, **geometry)
    nf = len(controlled)
    return cross_talk_matrix(g_all[:, :nf], g_all[:, nf:]), higher


@dataclass(frozen=True)
class ModalModel:
    """Normalised (D/r0 = 1) variance and remaining error of the fitted modes versus L0.

    ``log_l0`` (G,) nodes; ``variance`` and ``remaining`` (G, F) for the fitted modes.
    """

    diameter: float
    fit_noll: tuple
    log_l0: np.ndarray
    variance: np.ndarray
    remaining: np.ndarray
    _spline: CubicSpline

    def at(self, log_l0, variance_only: bool = False):
        """(variance, remaining) at ``ln L0`` (any shape S) -> arrays of shape S + (F,).

        With ``variance_only`` only the variance array is returned (faster).
        """
        u = np.clip(np.asarray(log_l0, dtype=float), self.log_l0[0], self.log_l0[-1])
        step = self.log_l0[1] - self.log_l0[0]
        k = np.minimum(((u - self.log_l0[0]) / step).astype(int), len(self.log_l0) - 2)
        t = (u - self.log_l0[k])[..., None]
        f = len(self.fit_noll)
        c = self._spline.c  # (4, G-1, 2F) piecewise-cubic coefficients, highest power first
        if variance_only:
            c = c[:, :, :f]
        both = ((c[0, k] * t + c[1, k]) * t + c[2, k]) * t + c[3, k]
        if variance_only:
            return both
        return both[..., :f], both[..., f:]


def model_at(outer_scale: float, diameter: float, fit_noll, controlled_noll, higher_noll,
             cross_talk) -> tuple[np.ndarray, np.ndarray]:
    """Exact normalised (variance, remaining error) of ``fit_noll`` at one L0 (inf allowed)."""
    controlled = [int(j) for j in controlled_noll]
    all_noll = controlled + [int(j) for j in higher_noll]
    x = 0.0 if np.isinf(outer_scale) else diameter / outer_scale
    cov = normalised_covariance_matrix(all_noll, x)
    nf = len(controlled)
    rows = [controlled.index(int(j)) for j in fit_noll]
    if cross_talk is None or len(higher_noll) == 0:
        rem = np.zeros(nf)
    else:
        rem = remaining_error(cross_talk, cov[:nf, nf:], cov[nf:, nf:])
    return np.diag(cov)[rows].copy(), rem[rows]


_TABLES: dict = {}


def modal_model(diameter: float, fit_noll, controlled_noll, higher_noll, cross_talk,
                outer_scale_bounds=(1.0, 1e4), n_nodes: int = 121) -> ModalModel:
    """Tabulated :class:`ModalModel` over ``outer_scale_bounds`` [m], cached."""
    lo, hi = (float(b) for b in outer_scale_bounds)
    c = np.zeros((0, 0)) if cross_talk is None else np.ascontiguousarray(cross_talk, dtype=float)
    key = (float(diameter), tuple(int(j) for j in fit_noll), tuple(int(j) for j in controlled_noll),
           tuple(int(j) for j in higher_noll), c.shape, hashlib.sha1(c.tobytes()).hexdigest(),
           lo, hi, int(n_nodes))
    if key in _TABLES:
        return _TABLES[key]
    log_l0 = np.linspace(np.log(lo), np.log(hi), int(n_nodes))
    var = np.empty((len(log_l0), len(key[1])))
    rem = np.empty_like(var)
    for k, u in enumerate(log_l0):
        var[k], rem[k] = model_at(np.exp(u), diameter, fit_noll, controlled_noll, higher_noll,
                                  cross_talk)
    spline = CubicSpline(log_l0, np.concatenate([var, rem], axis=1), axis=0)
    for arr in (log_l0, var, rem):
        arr.setflags(write=False)
    model = ModalModel(float(diameter), key[1], log_l0, var, rem, spline)
    if len(_TABLES) > 32:
        _TABLES.clear()
    _TABLES[key] = model
    return model
