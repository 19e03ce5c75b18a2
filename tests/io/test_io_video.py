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


def test_header_facts_read_the_pixel_scale_from_keywords_or_a_celestial_wcs():
    from dancekit.io.video import header_facts
    from dancekit.unet.domain import ARCSEC
    from tests.conftest import make_wcs

    wcs = make_wcs((64, 64), scale_arcsec=0.235).to_header()
    facts = header_facts(fits.Header({**wcs, "INSTRUME": "C2PU-Omicron ", "EXPTIME": 0.19}))
    assert facts.pixel_scale / ARCSEC == pytest.approx(0.235) and facts.instrument == "C2PU-Omicron" and facts.exposure == 0.19
    rotated = fits.Header({"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRVAL1": 10.0, "CRVAL2": 20.0,
                           "CD1_1": 0.0, "CD1_2": -0.5 / 3600, "CD2_1": 0.5 / 3600, "CD2_2": 0.0})
    assert header_facts(rotated).pixel_scale / ARCSEC == pytest.approx(0.5)
    assert header_facts(fits.Header({"PIXSCALE": 0.065, **wcs})).pixel_scale / ARCSEC == pytest.approx(0.065)  # the keyword wins
    bare = header_facts(fits.Header({"EXPTIME": "n/a", "CDELT1": 1.0, "CDELT2": 1.0}))  # a linear, not celestial, WCS
    assert (bare.pixel_scale, bare.exposure, bare.instrument) == (None, None, None)


def test_saturation_level_of_integer_pixels_and_the_saturate_keyword(tmp_path):
    from dancekit.io.video import saturation_level

    fits.PrimaryHDU(np.zeros((2, 4, 4), np.uint16)).writeto(tmp_path / "u16.fits")  # BITPIX 16 + BZERO 32768
    fits.PrimaryHDU(np.zeros((4, 4), np.int16)).writeto(tmp_path / "i16.fits")
    fits.PrimaryHDU(np.zeros((4, 4), np.uint8)).writeto(tmp_path / "u8.fits")
    fits.PrimaryHDU(np.zeros((4, 4), np.float32)).writeto(tmp_path / "f32.fits")
    levels = [saturation_level(fits.getheader(tmp_path / f"{n}.fits")) for n in ("u16", "i16", "u8", "f32")]
    assert levels == [65535.0, 32767.0, 255.0, None]
    assert saturation_level(fits.Header({"BITPIX": 16, "BZERO": 32768, "SATURATE": 60000})) == 60000.0


def test_single_frame_files_read_as_one_video_and_a_lone_image_only_when_asked(tmp_path):
    from dancekit.io.video import VideoInput

    frames = np.arange(3 * 4 * 5, dtype=np.float32).reshape(3, 4, 5)
    paths = []
    for i, frame in enumerate(frames):
        paths.append(str(tmp_path / f"f{i}.fits"))
        fits.PrimaryHDU(frame, header=fits.Header({"EXPTIME": 0.1 * (i + 1)})).writeto(paths[-1])
    (video,) = VideoInput.plan(paths, None)
    with video.open() as opened:
        assert opened.n_frames == 3 and opened.shape == (4, 5) and opened.header["EXPTIME"] == 0.1
        np.testing.assert_array_equal(opened.read(1, 3), frames[1:])
    (lone,) = VideoInput.plan(paths[:1], None)
    with pytest.raises(InputError, match="is a single 4x5 image, not a .T, H, W. video"):
        lone.open()
    with lone.open(single_image=True) as opened:
        assert opened.n_frames == 1
        np.testing.assert_array_equal(opened.read(0, 1), frames[:1])
    fits.PrimaryHDU(frames).writeto(tmp_path / "cube.fits")
    with pytest.raises(InputError, match="f0.fits is a single frame but .*cube.fits is a cube"):
        VideoInput.plan([paths[0], str(tmp_path / "cube.fits")], None)
