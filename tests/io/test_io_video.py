"""The video product round-trips through a real FITS file."""

import numpy as np
import pytest
from astropy.io import fits

from dancekit.errors import InputError
from dancekit.io.fits_in import FitsReader
from dancekit.io.video import read_truth, write_video


def test_video_round_trip(tmp_path):
    cube = np.random.default_rng(0).normal(size=(4, 16, 12)).astype(np.float32)
    truth = np.ones((16, 12), np.float32)
    header = fits.Header({"BUNIT": "electron", "EXPTIME": 0.19})
    path = tmp_path / "v.fits"
    write_video(str(path), cube, header, truth, {"x": [1.5, 2.0], "y": [3.0, 4.0], "mag": [15, 16]})
    with FitsReader(path) as reader:
        np.testing.assert_array_equal(reader.frames(0, 4), cube)
        np.testing.assert_array_equal(read_truth(reader, cube.shape), truth)
        assert reader.table("CATALOG")["x"].tolist() == [1.5, 2.0]
        assert reader.header("TRUTH")["BUNIT"] == "electron"
        with pytest.raises(InputError, match=r"TRUTH is \(16, 12\) but the frames are \(16, 13\)"):
            read_truth(reader, (4, 16, 13))
    write_video(str(tmp_path / "bare.fits"), cube, header)
    with FitsReader(tmp_path / "bare.fits") as reader, pytest.raises(InputError, match="has no TRUTH extension"):
        read_truth(reader)
