"""Geometric Shack-Hartmann model: interaction matrix of Noll Zernike modes and reconstructor.

A slope is the mean phase gradient [rad/m] over the illuminated part of a subaperture (the
geometric-optics centroid, Southwell 1980; Dai 1996). The NAOMI wavefront sensor (Woillez et al.
2019; Morujão et al. 2023 Table 1) is a 4x4 lenslet array over D = 1.8 m with 12 valid
subapertures and a 7.7 % central obstruction.

Slope vectors are ordered ``[x_1 .. x_S, y_1 .. y_S]`` (the AOT ``(2, S)`` layout flattened),
subapertures in row-major order of the lenslet grid (y rows, x columns).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from dancekit.ao.zernike import pupil_grid, zernike_gradient
from dancekit.errors import ParameterError

NAOMI_DIAMETER = 1.8  # m
NAOMI_OBSTRUCTION = 0.077  # central obstruction, diameter ratio
NAOMI_LENSLETS = 4  # lenslets across the pupil


def _check_geometry(n_lenslets, obstruction, samples, min_illumination):
    if int(n_lenslets) != n_lenslets or n_lenslets < 2:
        raise ParameterError(f"n_lenslets must be an integer >= 2, got {n_lenslets!r}")
    if not 0.0 <= obstruction < 1.0:
        raise ParameterError(f"obstruction (diameter ratio) must be in [0, 1), got {obstruction!r}")
    if int(samples) != samples or samples < 4:
        raise ParameterError(f"samples per subaperture must be an integer >= 4, got {samples!r}")
    if not 0.0 < min_illumination <= 1.0:
        raise ParameterError(f"min_illumination must be in (0, 1], got {min_illumination!r}")


@lru_cache(maxsize=16)
def _geometry(n_lenslets: int, obstruction: float, samples: int, min_illumination: float):
    x, y, mask = pupil_grid(n_lenslets * samples, obstruction)
    blocks = mask.reshape(n_lenslets, samples, n_lenslets, samples)
    fraction = blocks.mean(axis=(1, 3))
    valid = fraction >= min_illumination
    valid.setflags(write=False)
    return x, y, mask, valid


def valid_subapertures(n_lenslets: int = NAOMI_LENSLETS, obstruction: float = NAOMI_OBSTRUCTION,
                       samples_per_subaperture: int = 32, min_illumination: float = 0.5) -> np.ndarray:
    """Boolean (n_lenslets, n_lenslets) map of subapertures illuminated at >= ``min_illumination``.

    For the NAOMI geometry (4x4, 7.7 % obstruction) this keeps the 12 non-corner subapertures.
    """
    _check_geometry(n_lenslets, obstruction, samples_per_subaperture, min_illumination)
    return _geometry(int(n_lenslets), float(obstruction), int(samples_per_subaperture),
                     float(min_illumination))[3].copy()


def lenslets_for(n_valid: int, obstruction: float = NAOMI_OBSTRUCTION, first: int = NAOMI_LENSLETS,
                 max_lenslets: int = 64) -> int | None:
    """Lenslets across the pupil of the square Shack-Hartmann with ``n_valid`` valid subapertures
    (>= 50 % illuminated): ``first`` if it has that many, else the grid from 2 to ``max_lenslets``
    that has; None when none has (another illumination rule, or not such a sensor)."""
    if int(valid_subapertures(first, obstruction).sum()) == n_valid:
        return first
    # about pi/4 (1 - obstruction^2) of the grid's cells are valid: look only around that grid
    guess = int(round(np.sqrt(4.0 * n_valid / (np.pi * (1.0 - obstruction**2)))))
    for n_lenslets in range(max(2, guess - 2), min(max_lenslets, guess + 2) + 1):
        if int(valid_subapertures(n_lenslets, obstruction).sum()) == n_valid:
            return n_lenslets
    return None


def interaction_matrix(noll, diameter: float = NAOMI_DIAMETER, n_lenslets: int = NAOMI_LENSLETS,
                       obstruction: float = NAOMI_OBSTRUCTION, samples_per_subaperture: int = 32,
                       min_illumination: float = 0.5) -> np.ndarray:
    """Geometric SH interaction matrix G (2 S, len(noll)) [rad/m of slope per rad of mode].

    Column k holds the mean x- then y-gradient of Noll mode ``noll[k]`` over the illuminated
    pixels of each valid subaperture (``samples_per_subaperture``^2 pixels per lenslet).
    """
    _check_geometry(n_lenslets, obstruction, samples_per_subaperture, min_illumination)
    if not np.isfinite(diameter) or diameter <= 0:
        raise ParameterError(f"telescope diameter must be a finite positive length in m, got {diameter!r}")
    noll = [int(j) for j in np.atleast_1d(noll)]
    if min(noll) < 1:
        raise ParameterError(f"Noll indices must be >= 1, got {min(noll)}")
    return _interaction_matrix(tuple(noll), float(diameter), int(n_lenslets), float(obstruction),
                               int(samples_per_subaperture), float(min_illumination)).copy()


@lru_cache(maxsize=32)
def _interaction_matrix(noll, diameter, n_lenslets, obstruction, samples, min_illumination):
    x, y, mask, valid = _geometry(n_lenslets, obstruction, samples, min_illumination)
    shape = (n_lenslets, samples, n_lenslets, samples)
    weights = mask.reshape(shape).astype(float)
    counts = weights.sum(axis=(1, 3))[valid]
    radius = diameter / 2.0
    g = np.empty((2 * int(valid.sum()), len(noll)))
    for k, j in enumerate(noll):
        gx, gy = zernike_gradient(j, x, y)
        sx = (gx.reshape(shape) * weights).sum(axis=(1, 3))[valid] / counts
        sy = (gy.reshape(shape) * weights).sum(axis=(1, 3))[valid] / counts
        g[:, k] = np.concatenate([sx, sy]) / radius
    g.setflags(write=False)
    return g


def reconstructor(interaction: np.ndarray, rcond: float = 1e-10) -> np.ndarray:
    """Least-squares modal reconstructor R = pinv(G) (Morujão et al. 2023 eq. 5)."""
    interaction = np.asarray(interaction, dtype=float)
    if interaction.ndim != 2 or not np.all(np.isfinite(interaction)):
        raise ParameterError("interaction matrix must be a finite 2-D array (slopes x modes)")
    return np.linalg.pinv(interaction, rcond=rcond)


def cross_talk_matrix(interaction_controlled: np.ndarray, interaction_higher: np.ndarray) -> np.ndarray:
    """Cross-talk/aliasing matrix C = pinv(G_F) G_R (Dai 1996; Morujão et al. 2023 eq. 10).

    Shape (n_controlled, n_higher); reconstructed modes are ``b = a_F + C a_R`` (eq. 9).
    """
    gf = np.asarray(interaction_controlled, dtype=float)
    gr = np.asarray(interaction_higher, dtype=float)
    if gf.ndim != 2 or gr.ndim != 2 or gf.shape[0] != gr.shape[0]:
        raise ParameterError(
            f"G_controlled and G_higher must be 2-D with the same number of slopes, got "
            f"{gf.shape} and {gr.shape}")
    return reconstructor(gf) @ gr
