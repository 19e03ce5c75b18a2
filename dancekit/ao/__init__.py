"""Adaptive-optics telemetry: turbulence parameters from modal variances (Morujão et al. 2023).

Modules: ``zernike`` (Noll modes), ``covariance`` (von Kármán Zernike covariance, closed form and
quadrature), ``shack_hartmann`` (geometric SH interaction matrix, reconstructor, cross-talk),
``modal_model`` (remaining error, tabulated model), ``noise`` (autocorrelation noise estimate),
``pseudo_open_loop``, ``fit`` (iterative chi^2 r0/L0 fit with Monte Carlo), ``seeing``,
``synthetic`` (telemetry drawn exactly from the model).
"""
