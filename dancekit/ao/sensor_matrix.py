"""The wavefront sensor's own modal interaction matrix: cross-talk and noise propagation.

A real sensor differs from any built-in model (lenslet registration, pupil shape, centroiding), so
the remaining-error correction (Morujão et al. 2023 eq. 15) should use the sensor's measured
response ``G`` (n_slopes, n_modes) to each Noll mode, including modes beyond the reconstructed
ones. With the reconstructor ``R`` (n_reconstructed, n_slopes) that made the modes,

    b = R s = (R G_F) a_F + (R G_R) a_R  ->  C = (R G_F)^-1 R G_R                  (eq. 9-10)

which is ``pinv(G_F) G_R`` (Dai 1996) for the least-squares reconstructor ``R = pinv(G_F)``. ``C``
does not change under a reordering of the slopes or one scale factor on ``G`` (any slope unit
per any modal unit), but ``R`` and ``G`` must describe the same slopes in the same order: that is
checked (:func:`check_reconstructor`). White slope noise of variance sigma^2 reaches mode i as
``sigma^2 (R R^T)_ii`` (eq. 14, :func:`noise_gain`).
"""

from __future__ import annotations

import numpy as np

from dancekit.errors import InputError


def _shape(a) -> str:
    return "(" + ", ".join(str(n) for n in np.shape(a)) + ")"


def columns_for(interaction: np.ndarray, interaction_noll, wanted_noll, what: str) -> np.ndarray:
    """The columns of ``interaction`` (n_slopes, K) for the Noll modes ``wanted_noll``."""
    have = [int(j) for j in interaction_noll]
    missing = [int(j) for j in wanted_noll if int(j) not in have]
    if missing:
        raise InputError(
            f"the interaction matrix {_shape(interaction)} covers Noll {have[0]}-{have[-1]} but the {what} "
            f"need Noll {min(missing)}-{max(missing)}")
    return interaction[:, [have.index(int(j)) for j in wanted_noll]]


def check_reconstructor(reconstructor: np.ndarray, interaction_controlled: np.ndarray,
                        tolerance: float = 0.3) -> float:
    """Relative distance of ``R G_F`` from a multiple of the identity; refuse above ``tolerance``.

    ``reconstructor`` R (K, n_slopes) and ``interaction_controlled`` G_F (n_slopes, K) of the same
    modes. A sensor's matrix and its own reconstructor give ~0.01 (any units); slopes in another
    order (x/y interleaved against blocked) or other modes give ~1.
    """
    r = np.asarray(reconstructor, dtype=float)
    g = np.asarray(interaction_controlled, dtype=float)
    if r.shape[1] != g.shape[0]:
        raise InputError(f"the interaction matrix {_shape(g)} has {g.shape[0]} slopes but the reconstructor "
                         f"(measurements-to-modes) {_shape(r)} maps {r.shape[1]}")
    product = r @ g
    scale = np.trace(product) / len(product)
    mismatch = float(np.linalg.norm(product - scale * np.eye(len(product))) / (abs(scale) * np.sqrt(len(product)))) \
        if scale != 0 else np.inf
    if not mismatch <= tolerance:
        raise InputError(
            f"the interaction matrix's columns of the reconstructed modes {_shape(g)} and the measurements-to-modes "
            f"matrix {_shape(r)} do not describe "
            f"the same slopes and modes (|R G - c I| / |c I| = {mismatch:.2f} > {tolerance}): check the slope order "
            "(SLOPEORD 'xxyy' = x1..xS, y1..yS or 'xyxy' = x1, y1, x2, ...) and NOLLMIN of the matrix")
    return mismatch


def cross_talk_from_sensor(interaction: np.ndarray, interaction_noll, controlled_noll, max_noll: int,
                           reconstructor: np.ndarray | None = None) -> tuple[np.ndarray, tuple]:
    """C (K, R) of the sensor and the higher Noll modes it maps (those of ``interaction`` above the
    controlled ones, up to ``max_noll``).

    ``interaction`` G (n_slopes, M) with columns ``interaction_noll``; ``controlled_noll`` (K) the
    reconstructed modes; ``reconstructor`` R (K, n_slopes) or None for least squares pinv(G_F).
    """
    g = np.asarray(interaction, dtype=float)
    if g.ndim != 2 or not np.all(np.isfinite(g)):
        raise InputError(f"the interaction matrix must be a finite (slopes, modes) array, got {_shape(g)}")
    if g.shape[1] != len(interaction_noll):
        raise InputError(f"the interaction matrix {_shape(g)} has {g.shape[1]} columns for {len(interaction_noll)} Noll indices")
    controlled = [int(j) for j in controlled_noll]
    g_f = columns_for(g, interaction_noll, controlled, "reconstructed modes")
    higher = tuple(int(j) for j in interaction_noll if max(controlled) < int(j) <= int(max_noll))
    if not higher:
        raise InputError(
            f"the interaction matrix {_shape(g)} (Noll {int(interaction_noll[0])}-{int(interaction_noll[-1])}) has no "
            f"mode above the reconstructed Noll {controlled[0]}-{controlled[-1]}: no remaining-error correction "
            "can be computed from it (use --no-remaining-error, or a matrix that includes higher modes)")
    g_r = columns_for(g, interaction_noll, higher, "higher modes")
    if reconstructor is None:
        return np.linalg.pinv(g_f) @ g_r, higher
    r = np.asarray(reconstructor, dtype=float)
    if r.shape != (len(controlled), g.shape[0]):
        raise InputError(f"the interaction matrix {_shape(g)} does not fit the measurements-to-modes matrix "
                         f"{_shape(r)}: need ({len(controlled)}, {g.shape[0]})")
    check_reconstructor(r, g_f)
    return np.linalg.solve(r @ g_f, r @ g_r), higher


def noise_gain(reconstructor: np.ndarray) -> np.ndarray:
    """(R R^T)_ii per mode: the modal noise variance per unit white slope-noise variance (eq. 14)."""
    r = np.asarray(reconstructor, dtype=float)
    return np.einsum("ij,ij->i", r, r)


def sensor_model(controlled_noll, max_radial_order: int, diameter: float, interaction=None, interaction_noll=None,
                 reconstructor=None, **geometry) -> tuple[np.ndarray, tuple, np.ndarray]:
    """(C, higher Noll, diag(R R^T)) of the sensor that made the modes ``controlled_noll``.

    With ``interaction`` (n_slopes, M) of columns ``interaction_noll``: C from it
    (:func:`cross_talk_from_sensor`, modes up to ``max_radial_order``); otherwise the built-in
    geometric Shack-Hartmann (:func:`dancekit.ao.modal_model.naomi_cross_talk`, ``geometry`` to
    :func:`dancekit.ao.shack_hartmann.interaction_matrix`). The noise gain is that of
    ``reconstructor`` (K, n_slopes) when given, else of least squares on the sensor's G_F.
    """
    from dancekit.ao.modal_model import naomi_cross_talk
    from dancekit.ao.shack_hartmann import interaction_matrix, reconstructor as least_squares
    from dancekit.ao.zernike import n_modes_to_order

    controlled = [int(j) for j in controlled_noll]
    if interaction is None:
        c, higher = naomi_cross_talk(controlled, max_radial_order, diameter, **geometry)
        g_f = interaction_matrix(controlled, diameter=diameter, **geometry)
    else:
        c, higher = cross_talk_from_sensor(interaction, interaction_noll, controlled,
                                           n_modes_to_order(max_radial_order), reconstructor)
        g_f = columns_for(np.asarray(interaction, dtype=float), interaction_noll, controlled, "reconstructed modes")
    return c, tuple(int(j) for j in higher), noise_gain(least_squares(g_f) if reconstructor is None else reconstructor)
