"""Atomic writes: a killed or failed write leaves nothing behind; an existing file is kept."""

import os
import signal

import numpy as np
import pytest
from astropy.io import fits

from dancekit.commands.runtime import Terminated, sigterm_raises
from dancekit.errors import InputError
from dancekit.io.fits_out import atomic_path, output_for, write_hdus


def test_sigterm_during_write_removes_the_partial_file(tmp_path):
    target = tmp_path / "out.fits"
    with pytest.raises(Terminated), sigterm_raises():
        with atomic_path(target) as tmp:
            with open(tmp, "wb") as handle:
                handle.write(b"half a file")
            assert os.path.exists(tmp)
            os.kill(os.getpid(), signal.SIGTERM)
    assert list(tmp_path.iterdir()) == []


def test_exception_during_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.fits"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(target, overwrite=True):
            raise RuntimeError("disk full")
    assert target.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [target]


def test_write_has_checksums_and_is_complete(tmp_path):
    target = tmp_path / "out.fits"
    write_hdus(fits.HDUList([fits.PrimaryHDU(np.ones((5, 5), np.float32))]), str(target))
    with fits.open(target, checksum=True) as hdul:
        assert hdul[0].verify_checksum() == 1
    assert oct(target.stat().st_mode)[-3:] == "644"


def test_output_for_many_inputs_needs_a_folder(tmp_path):
    assert output_for("a/b/night1.fits.gz", str(tmp_path), 2) == str(tmp_path / "night1.fits")
    with pytest.raises(InputError, match="with 3 inputs, -o must be an existing folder"):
        output_for("x.fits", str(tmp_path / "nope.fits"), 3)
    with pytest.raises(InputError, match="cannot all go to standard output"):
        output_for("x.fits", "-", 2)
