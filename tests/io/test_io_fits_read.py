"""Reading FITS: compressed and multi-extension files, frame slices, and clear errors."""

import numpy as np
import pytest
from astropy.io import fits

from dancekit.errors import InputError
from dancekit.io.fits_in import FitsReader, read_image


def test_frames_are_read_in_slices(cube_file):
    path, data = cube_file(shape=(10, 16, 12))
    with FitsReader(path) as reader:
        np.testing.assert_array_equal(reader.frames(3, 7), data[3:7])
        assert reader.image_info(None, 3).shape == (10, 16, 12)
        with pytest.raises(InputError, match="frames 8:12 outside the cube's 10 frames"):
            reader.frames(8, 12)


def test_tile_compressed_and_named_extensions(tmp_path):
    image = np.arange(64 * 48, dtype=np.float32).reshape(64, 48)
    path = tmp_path / "multi.fits.fz"
    table = fits.BinTableHDU.from_columns([fits.Column("x", "E", array=np.arange(3.0))], name="CATALOG")
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(image, name="SCI", compression_type="GZIP_2"), table]).writeto(path)
    data, header = read_image(path)
    np.testing.assert_array_equal(data, image)
    with FitsReader(path) as reader:
        assert reader.has("catalog")
        np.testing.assert_array_equal(reader.table("CATALOG")["x"], [0, 1, 2])
        with pytest.raises(InputError, match="has no 'TRUTH' extension"):
            reader.image("TRUTH")


def test_gzip_file(tmp_path):
    import gzip

    path = tmp_path / "img.fits"
    fits.PrimaryHDU(np.eye(4, dtype=np.int16)).writeto(path)
    gz = tmp_path / "img.fits.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    data, _ = read_image(gz)
    assert data.dtype == np.float32 and data[2, 2] == 1


@pytest.mark.parametrize(
    "content, message",
    [
        (b"hello world, not a fits file at all", "not a FITS file"),
        (None, "truncated FITS file"),
    ],
)
def test_malformed_files(tmp_path, content, message):
    path = tmp_path / "bad.fits"
    if content is None:
        good = tmp_path / "good.fits"
        fits.PrimaryHDU(np.zeros((100, 100), np.float32)).writeto(good)
        content = good.read_bytes()[:5000]
    path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        read_image(path)


def test_wrong_dimensionality_and_missing_file(cube_file, tmp_path):
    path, _ = cube_file()
    with pytest.raises(InputError, match=r"is 3-D \(6, 32, 40\), expected 2-D"):
        read_image(path, ndim=2)
    with pytest.raises(InputError, match="no such file"):
        read_image(tmp_path / "absent.fits")


def test_table_only_file_has_no_image(tmp_path):
    path = tmp_path / "t.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns([fits.Column("a", "J", array=[1])])]).writeto(path)
    with pytest.raises(InputError, match="holds no image HDU"):
        read_image(path)
