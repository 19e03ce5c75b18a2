"""dancekit: turbulence-limited imaging and detector calibration, as composable FITS commands."""

__version__ = "0.1.0"
