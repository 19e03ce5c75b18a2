"""Provenance cards and the header keywords carried from inputs to derived products."""

from __future__ import annotations

import contextvars
import shlex
import sys
import textwrap
from dataclasses import dataclass, field

from astropy.io import fits

from dancekit import __version__

# Keywords of an input that every derived product keeps (DESIGN.md, "Headers are carried through").
CARRIED_KEYS = ("DATE-OBS", "MJD-OBS", "EXPTIME", "AIRMASS", "FILTER", "OBJECT", "TELESCOP", "INSTRUME", "BUNIT")
WCS_PREFIXES = ("CTYPE", "CRPIX", "CRVAL", "CDELT", "CUNIT", "CD1_", "CD2_", "PC1_", "PC2_", "CROTA", "PV1_", "PV2_")
WCS_KEYS = ("WCSAXES", "RADESYS", "EQUINOX", "LONPOLE", "LATPOLE", "WCSNAME")
#: the arguments of the command being run; set on Dask workers, whose own sys.argv is the worker's
command_arguments: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("command_arguments", default=None)


@dataclass(frozen=True)
class Provenance:
    """What made a product: written as DK* keywords and HISTORY into every FITS dancekit writes."""

    command: str
    config_hash: str | None = None
    seed: int | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_argv(cls, config_hash: str | None = None, seed: int | None = None, **extra) -> "Provenance":
        """The command line being run, less ``--scheduler``: where a product was made does not change
        it, and a set made on a cluster is then byte-identical to the same set made in process."""
        argv = ["dancekit", *without_scheduler(command_arguments.get() or sys.argv[1:])]
        return cls(" ".join(shlex.quote(a) for a in argv), config_hash, seed, dict(extra))

    def apply(self, header: fits.Header) -> None:
        header["DKVERS"] = (__version__, "dancekit version that wrote this file")
        if self.config_hash:
            header["DKCFGH"] = (self.config_hash, "sha256 (first 16 hex) of the resolved config")
        if self.seed is not None:
            header["DKSEED"] = (int(self.seed), "random seed of this product")
        for key, (value, comment) in self.extra.items():
            header[key] = (value, comment)
        for line in textwrap.wrap(f"dancekit {__version__}: {self.command}", 70):
            header.add_history(line)


def without_scheduler(arguments: list[str]) -> list[str]:
    """``arguments`` less ``--scheduler VALUE`` / ``--scheduler=VALUE``."""
    kept, skip = [], False
    for argument in arguments:
        if skip:
            skip = False
        elif argument == "--scheduler":
            skip = True
        elif not argument.startswith("--scheduler="):
            kept.append(argument)
    return kept


def carry_header(source: fits.Header, target: fits.Header, with_wcs: bool = True, naxis: int = 2) -> None:
    """Copy the observation keywords (and the WCS of the first ``naxis`` axes) onto a product's header."""
    for key in CARRIED_KEYS:
        if key in source:
            target[key] = (source[key], source.comments[key])
    if not with_wcs:
        return
    for key in source:
        if key.startswith(WCS_PREFIXES) and max(_wcs_axes(key)) <= naxis:
            target[key] = (source[key], source.comments[key])
        elif key in WCS_KEYS and key != "WCSAXES":
            target[key] = (source[key], source.comments[key])


def _wcs_axes(key: str) -> list[int]:
    """The axis numbers a WCS keyword refers to: CTYPE3 -> [3], PC1_2 -> [1, 2], PV2_5 -> [2]."""
    head, _, tail = key.partition("_")
    axes = [int(head[-1])] if head[-1:].isdigit() else [0]
    if tail and not key.startswith("PV") and tail.isdigit():
        axes.append(int(tail))
    return axes
