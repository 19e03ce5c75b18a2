"""Reading a photometric reference catalogue (a FITS table) into the photometry library's arrays.

The table needs sky positions and a magnitude in the band being calibrated; an error column and
a colour are optional. Column names are matched case-insensitively against the spellings of the
common extracts (Gaia archive, VizieR, Pan-STARRS, SDSS, APASS, plain ``ra``/``dec``/``mag``):

* position: ``ra``/``dec``, ``ra_icrs``/``de_icrs``, ``raj2000``/``dej2000``,
  ``alpha_j2000``/``delta_j2000``; degrees, or radians when the column's TUNIT says ``rad``;
* magnitude in band ``B``: ``B``, ``Bmag``, ``B_mag``, ``mag_B``, ``Bmeanpsfmag``,
  ``phot_B_mean_mag`` (Gaia: band ``g``, ``bp``, ``rp``); ``mag`` when no band is given;
* its 1σ error: ``e_Bmag``, ``Bmag_err``, ``B_mag_err``, ``B_err``, ``Berr``, ``err_B``,
  ``e_B``, ``Bmeanpsfmagerr``, ``magerr_B``, ``phot_B_mean_mag_error``, or Gaia's
  ``phot_B_mean_flux_over_error`` (σ_m = 2.5/ln10 / (S/N)); ``mag_err`` when no band is given;
* colour ``A-B``: a column ``A-B``, ``A_B``, ``A-Bmag``, or else the difference of the
  magnitude columns of bands A and B (so ``bp-rp`` works on a Gaia extract).

A missing column is an ``InputError`` that names what was looked for and lists the columns the
table does have.
"""

from __future__ import annotations

import numpy as np

from dancekit.errors import InputError, ParameterError
from dancekit.io.fits_in import FitsReader, display_name

_RA_NAMES = ("ra", "ra_icrs", "raj2000", "ra_j2000", "alpha_j2000", "radeg")
_DEC_NAMES = ("dec", "de_icrs", "dec_icrs", "dej2000", "decj2000", "dec_j2000", "delta_j2000", "dedeg", "decdeg")
_SIGMA_PER_INVERSE_SNR = 2.5 / np.log(10.0)  # mag: σ_m = 1.0857 · σ_F / F


def magnitude_names(band: str | None) -> tuple[str, ...]:
    """Column spellings accepted for the magnitude in ``band`` (lower case)."""
    if band is None:
        return ("mag",)
    b = band.lower()
    return (b, f"{b}mag", f"{b}_mag", f"mag_{b}", f"{b}meanpsfmag", f"{b}_psf", f"phot_{b}_mean_mag")


def magnitude_error_names(band: str | None) -> tuple[str, ...]:
    """Column spellings accepted for the 1σ error of the magnitude in ``band`` (lower case)."""
    if band is None:
        return ("mag_err", "magerr", "e_mag", "err_mag")
    b = band.lower()
    return (f"e_{b}mag", f"{b}mag_err", f"{b}_mag_err", f"{b}_err", f"{b}err", f"err_{b}", f"e_{b}",
            f"{b}magerr", f"{b}meanpsfmagerr", f"magerr_{b}", f"phot_{b}_mean_mag_error")


def parse_colour(colour: str) -> tuple[str, str]:
    """``'g-r'`` -> ``('g', 'r')``; the colour index is m_A − m_B."""
    first, sep, second = (colour or "").partition("-")
    if not sep or not first.strip() or not second.strip() or "-" in second:
        raise ParameterError(f"colour must read BAND-BAND (e.g. g-r or bp-rp), got {colour!r}", source="--color")
    return first.strip(), second.strip()


def read_reference_catalogue(path: str, band: str | None = None, colour: str | None = None,
                             ext: int | str | None = None):
    """Read a reference catalogue FITS table into a :class:`~dancekit.photometry.ReferenceCatalogue`.

    Parameters
    ----------
    path : FITS file holding a binary (or ASCII) table; ``-`` reads it from standard input.
    band : band to calibrate (e.g. ``r``, ``g``, ``K``); None uses a column named ``mag``.
    colour : ``A-B`` colour index for the colour term, or None.
    ext : table extension (index or EXTNAME); the first table HDU by default.

    Returns
    -------
    ReferenceCatalogue with ra, dec in radians, mag and mag_err (zeros when the table has no
    error column) in mag, colour in mag or None. Rows without finite positions are dropped.

    Raises
    ------
    InputError : unreadable file, no table, a missing column (named, with the available ones),
        no row with a finite position.
    """
    from dancekit.photometry import reference_catalogue  # scipy/sep stay out of `dancekit --help`

    name = display_name(path)
    try:
        return _read(path, band, colour, ext, name, reference_catalogue)
    except InputError as exc:
        raise exc.with_source(name)


def _read(path, band, colour, ext, name, reference_catalogue):
    with FitsReader(path) as reader:
        table = reader.table(ext)
        info = reader.find(ext, "table")
        header = reader.header(info.index, kind="table")
    columns = {str(c).lower(): str(c) for c in (table.dtype.names or ())}
    available = ", ".join(table.dtype.names or ()) or "none"

    def find(names, what, required=True):
        for candidate in names:
            if candidate in columns:
                return columns[candidate]
        if required:
            tried = ", ".join(names)
            raise InputError(f"the catalogue has no {what} column (looked for: {tried}; it has: {available})",
                             source=name)
        return None

    ra_col, dec_col = find(_RA_NAMES, "right ascension"), find(_DEC_NAMES, "declination")
    band_text = f"'{band}'-band magnitude" if band else "'mag' (give --band to pick a band)"
    mag_col = find(magnitude_names(band), band_text)
    ra = _angle(table[ra_col], _unit(header, table, ra_col), ra_col, name)
    dec = _angle(table[dec_col], _unit(header, table, dec_col), dec_col, name)
    mag = _floats(table[mag_col])
    err_col = find(magnitude_error_names(band), "error", required=False)
    if err_col is not None:
        mag_err = _floats(table[err_col])
    else:
        snr_col = find((f"phot_{band.lower()}_mean_flux_over_error",) if band else (), "S/N", required=False)
        mag_err = _SIGMA_PER_INVERSE_SNR / _floats(table[snr_col]) if snr_col is not None else None
    colour_values = None
    if colour:
        first, second = parse_colour(colour)
        direct = find(_colour_names(first, second), "colour", required=False)
        if direct is not None:
            colour_values = _floats(table[direct])
        else:
            try:
                colour_values = (_floats(table[find(magnitude_names(first), f"'{first}'-band magnitude")])
                                 - _floats(table[find(magnitude_names(second), f"'{second}'-band magnitude")]))
            except InputError as exc:
                raise InputError(f"cannot form the colour {colour}: {exc.message}", source=name) from None
    if mag_err is not None:
        mag_err = np.where(np.isfinite(mag_err) & (mag_err >= 0), mag_err, np.nan)
    keep = np.isfinite(ra) & np.isfinite(dec)
    if not keep.any():
        raise InputError(f"no row of the catalogue has a finite {ra_col}/{dec_col}", source=name)
    return reference_catalogue(ra[keep], dec[keep], mag[keep], None if mag_err is None else mag_err[keep],
                               None if colour_values is None else colour_values[keep])


def _colour_names(first: str, second: str) -> tuple[str, ...]:
    a, b = first.lower(), second.lower()
    return (f"{a}-{b}", f"{a}_{b}", f"{a}-{b}mag", f"{a}_{b}_color", f"{a}_{b}_colour")


def _floats(column) -> np.ndarray:
    values = np.asarray(column)
    if values.dtype.kind not in "iuf":
        raise InputError(f"column holds non-numeric values ({values.dtype})")
    return values.astype(float)


def _unit(header, table, column: str) -> str:
    """TUNITn of a column ('' when absent)."""
    index = list(table.dtype.names).index(column) + 1
    return str(header.get(f"TUNIT{index}", "")).strip().lower()


def _angle(column, unit: str, label: str, name: str) -> np.ndarray:
    """A position column in radians (degrees unless its unit says radians)."""
    try:
        values = _floats(column)
    except InputError as exc:
        raise InputError(f"column {label}: {exc.message}", source=name) from None
    if unit in ("rad", "radian", "radians"):
        return values
    if unit not in ("", "deg", "degree", "degrees", "d"):
        raise InputError(f"column {label} has unit '{unit}'; positions must be in deg or rad", source=name)
    return np.radians(values)
