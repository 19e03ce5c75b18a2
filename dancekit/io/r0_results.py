"""The FITS product of ``fit-r0``: a FIT_R0 table (one row per control loop of each file) and an
R0_MODES table (the per-mode evidence of every row: Morujão et al. 2023 Fig. 3, variance vs Noll)."""

from __future__ import annotations

import numpy as np
from astropy.io import fits

# column: (FITS format, unit, comment)
COLUMNS = {
    "file": ("A", "", "telemetry file"),
    "loop_name": ("A", "", "AOT control loop (modal: pseudo-open-loop FITS)"),
    "format": ("A", "", "aot or modal"),
    "loop": ("A", "", "open, closed, or modal (pseudo-open-loop)"),
    "date": ("A", "", "start of the series (DATE-BEG)"),
    "r0": ("D", "m", "line-of-sight Fried parameter at 500 nm"),
    "r0_err": ("D", "m", "Monte-Carlo standard deviation of r0"),
    "r0_zenith": ("D", "m", "r0 at zenith, 500 nm"),
    "seeing": ("D", "arcsec", "FWHM seeing at zenith, 500 nm"),
    "seeing_err": ("D", "arcsec", "seeing uncertainty"),
    "L0": ("D", "m", "fitted L0; NaN when fixed or at a bound"),
    "L0_err": ("D", "m", "Monte-Carlo standard deviation of L0"),
    "L0_lo": ("D", "m", "16th percentile of the Monte-Carlo L0"),
    "L0_hi": ("D", "m", "84th percentile of the Monte-Carlo L0"),
    "L0_flag": ("A", "", "fitted, fixed, lower_bound or upper_bound"),
    "mon_seeing": ("D", "arcsec", "site monitor (DIMM) seeing, zenith, 500 nm"),
    "mon_r0": ("D", "m", "site monitor r0, zenith, 500 nm"),
    "mon_L0": ("D", "m", "site monitor L0 (layers combined)"),
    "monitor": ("A", "", "site monitor of the file (AOT atmospheric parameters)"),
    "sensor": ("A", "", "interaction matrix of the remaining error"),
    "noise": ("D", "rad2", "noise variance per fitted mode, 500 nm"),
    "n_frames": ("K", "", "frames fitted"),
    "duration": ("D", "s", "time horizon fitted"),
    "framerate": ("D", "Hz", "loop frame rate"),
    "delay": ("K", "", "loop delay used, frames (0: open loop)"),
    "elevation": ("D", "deg", "telescope elevation (NaN: unknown)"),
    "airmass": ("D", "", "airmass used for zenith values"),
    "diameter": ("D", "m", "telescope diameter used"),
    "iterations": ("K", "", "fit iterations"),
    "converged": ("L", "", "r0 changed by less than fit.tolerance"),
    "flags": ("A", "", "comma-separated notes on what was assumed"),
    "sim_r0": ("D", "m", "true r0 of a simulation (NaN: real data)"),
}

# per-mode evidence: (key in row["modes"], unit, comment)
MODE_COLUMNS = {
    "noll": ("K", "", "Noll index"),
    "fitted": ("L", "", "mode used in the fit"),
    "measured": ("D", "rad2", "variance of the pseudo-open-loop mode, 500 nm"),
    "noise": ("D", "rad2", "measurement-noise variance (autocorrelation)"),
    "noise_corrected": ("D", "rad2", "measured - noise"),
    "remaining": ("D", "rad2", "remaining (aliasing + cross-talk) error at the fit"),
    "corrected": ("D", "rad2", "measured - noise - remaining: turbulence alone"),
    "model": ("D", "rad2", "von Karman variance at the fitted r0 and L0"),
}


def _column(key: str, form: str, unit: str, values) -> fits.Column:
    if form == "A":
        width = max(1, max(len(str(v)) for v in values))
        return fits.Column(name=key.upper(), format=f"{width}A", array=np.array(values, dtype=f"U{width}"))
    return fits.Column(name=key.upper(), format=form, unit=unit or None, array=np.array(values))


def _comment(table: fits.BinTableHDU, comments) -> None:
    for i, comment in enumerate(comments, start=1):
        table.header[f"TTYPE{i}"] = (table.header[f"TTYPE{i}"], comment)


def modes_table(rows: list[dict]) -> fits.BinTableHDU:
    """R0_MODES: one row per (FIT_R0 row, Noll mode), ROW being the 1-based FIT_R0 row."""
    columns = [fits.Column(name="ROW", format="K", array=np.concatenate(
        [np.full(len(r["modes"]["noll"]), i, dtype=np.int64) for i, r in enumerate(rows, start=1)]))]
    for key, (form, unit, _) in MODE_COLUMNS.items():
        values = np.concatenate([np.asarray(r["modes"][key]) for r in rows])
        columns.append(fits.Column(name=key.upper(), format=form, unit=unit or None, array=values))
    table = fits.BinTableHDU.from_columns(columns, name="R0_MODES")
    _comment(table, ["row of FIT_R0"] + [c for _, _, c in MODE_COLUMNS.values()])
    return table


def results_hdus(rows: list[dict], fitted: tuple, header_cards: dict) -> fits.HDUList:
    """Primary HDU, the FIT_R0 table (one row per fitted loop) and the R0_MODES evidence."""
    columns = []
    for key, (form, unit, _) in COLUMNS.items():
        values = [row[key] for row in rows]
        if key == "noise":
            columns.append(fits.Column(name="NOISE", format=f"{len(fitted)}D", unit=unit, array=np.array(values)))
        else:
            columns.append(_column(key, form, unit, values))
    table = fits.BinTableHDU.from_columns(columns, name="FIT_R0")
    _comment(table, [c for _, _, c in COLUMNS.values()])
    primary = fits.PrimaryHDU()
    modes = modes_table(rows)
    for header in (primary.header, table.header, modes.header):
        header["FITNOLL"] = (f"{fitted[0]}-{fitted[-1]}", "Noll modes fitted (NOISE columns in this order)")
        for key, (value, comment) in header_cards.items():
            header[key] = (value, comment)
    return fits.HDUList([primary, table, modes])
