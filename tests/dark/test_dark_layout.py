"""Raw-frame layout: region positions per mirrored channel, round trips, shape errors."""

import numpy as np
import pytest

from dancekit.dark.cameras import (
    lamost_layout, layout_from_mapping, parse_fits_section, quadrant_layout, single_amplifier_layout,
)
from dancekit.dark.layout import (
    RawLayout, Segment, assemble_active, assemble_channels, channel_block, channels_to_mosaic,
    mosaic_to_channels, region, region_stack, split_channels,
)
from dancekit.errors import ConfigError, InputError, ParameterError


def _column_index_frame(layout):
    rows, cols = layout.frame_shape
    return np.broadcast_to(np.arange(cols, dtype=np.int32), (rows, cols))


def _row_index_frame(layout):
    rows, cols = layout.frame_shape
    return np.broadcast_to(np.arange(rows, dtype=np.int32)[:, None], (rows, cols))


def test_lamost_geometry_from_the_paper():
    # Qu et al. 2024 sec. 2.2-2.3: 2200 x 2094 raw, 4 channels, 1042^2 active, 46-px overscan, 4-px OB
    lay = lamost_layout()
    assert lay.frame_shape == (2094, 2200)
    assert lay.channel_shape == (1047, 1100)
    assert lay.region_shape("active") == (1042, 1042)
    assert lay.region_shape("overscan") == (1042, 46)
    assert lay.region_shape("ob_columns") == (1042, 4)
    assert lay.region_shape("ob_rows") == (4, 1042)


def test_lamost_regions_sit_at_the_mirrored_columns():
    lay = lamost_layout()
    cols, rows = _column_index_frame(lay), _row_index_frame(lay)
    # left channels: prescan 0-2, invalid 3, amplifier 4-7, OB 8-11, active 12-1053, overscan 1054-1099
    for ch in (0, 2):
        np.testing.assert_array_equal(region(cols, lay, ch, "active")[0], np.arange(12, 1054))
        np.testing.assert_array_equal(region(cols, lay, ch, "overscan")[0], np.arange(1054, 1100))
        np.testing.assert_array_equal(region(cols, lay, ch, "ob_columns")[0], np.arange(8, 12))
    # right channels: read from the right edge: prescan 2199-2197, ..., overscan 1145 down to 1100
    for ch in (1, 3):
        np.testing.assert_array_equal(region(cols, lay, ch, "active")[0], np.arange(2187, 1145, -1))
        np.testing.assert_array_equal(region(cols, lay, ch, "overscan")[0], np.arange(1145, 1099, -1))
        np.testing.assert_array_equal(region(cols, lay, ch, "ob_columns")[0], np.arange(2191, 2187, -1))
        np.testing.assert_array_equal(channel_block(cols, lay, ch)[0, :3], [2199, 2198, 2197])
    # rows: top channels OB rows 0-3, active 4-1045, middle row 1046; bottom channels mirrored
    for ch in (0, 1):
        np.testing.assert_array_equal(region(rows, lay, ch, "ob_rows")[:, 0], np.arange(0, 4))
        np.testing.assert_array_equal(region(rows, lay, ch, "active")[:, 0], np.arange(4, 1046))
    for ch in (2, 3):
        np.testing.assert_array_equal(region(rows, lay, ch, "ob_rows")[:, 0], np.arange(2093, 2089, -1))
        np.testing.assert_array_equal(region(rows, lay, ch, "active")[:, 0], np.arange(2089, 1047, -1))


def test_trimmed_mosaic_is_the_frame_without_the_non_active_pixels():
    lay = quadrant_layout(name="small", active=10, overscan=5)  # channel 15 rows x 27 columns
    frame = np.random.default_rng(0).normal(size=lay.frame_shape)
    keep_rows = np.r_[4:14, 16:26]  # OB 4 | active 10 | middle 1, mirrored below
    keep_cols = np.r_[12:22, 32:42]  # 3+1+4+4 | 10 | 5, mirrored on the right
    trimmed = assemble_active(region_stack(frame, lay, "active"), lay)
    np.testing.assert_array_equal(trimmed, frame[np.ix_(keep_rows, keep_cols)])


def test_split_and_assemble_round_trip():
    lay = quadrant_layout(name="small", active=10, overscan=5)
    frame = np.random.default_rng(1).normal(size=lay.frame_shape)
    blocks = split_channels(frame, lay)
    assert blocks.shape == (4, 15, 27)
    np.testing.assert_array_equal(assemble_channels(blocks, lay), frame)
    np.testing.assert_array_equal(mosaic_to_channels(channels_to_mosaic(blocks, lay), lay), blocks)
    # blocks numbered 0..26 from each readout corner assemble into a mirror-symmetric frame
    numbered = np.broadcast_to(np.arange(27.0), (4, 15, 27))
    raw = assemble_channels(numbered, lay)
    np.testing.assert_array_equal(raw[0], np.r_[np.arange(27), np.arange(26, -1, -1)])
    np.testing.assert_array_equal(raw, raw[::-1])


def test_regions_are_read_only_views_and_the_frame_is_untouched():
    lay = quadrant_layout(name="small", active=10, overscan=5)
    frame = np.zeros(lay.frame_shape)
    view = region(frame, lay, 3, "overscan")
    assert np.shares_memory(view, frame)
    with pytest.raises(ValueError):
        view[0, 0] = 1.0
    assert frame.flags.writeable


def test_shape_mismatch_names_both_shapes():
    lay = lamost_layout()
    with pytest.raises(InputError, match=r"\(2094, 2199\).*'lamost'.*\(2094, 2200\)"):
        region(np.zeros((2094, 2199), np.float32), lay, 0, "active")
    with pytest.raises(InputError, match=r"\(2094, 2200\)"):
        split_channels(np.zeros((10, 2094, 2200), np.float32), lay)


def test_bad_channel_region_and_grid_are_named():
    lay = quadrant_layout(name="small", active=10, overscan=5)
    frame = np.zeros(lay.frame_shape)
    with pytest.raises(ParameterError, match=r"channel .* \[0, 3\].* got 4"):
        region(frame, lay, 4, "active")
    with pytest.raises(ParameterError, match="no region 'bias'.*'overscan'"):
        region(frame, lay, 0, "bias")
    with pytest.raises(ParameterError, match="channel_grid.*1 or 2.*\\(3, 1\\)"):
        RawLayout("x", (3, 1), (Segment("active", 4, True),), (Segment("active", 4, True),), (("active", "active", "active"),))
    with pytest.raises(ParameterError, match="region 'overscan'.*column segment 'overscan'"):
        RawLayout("x", (1, 1), (Segment("active", 4, True),), (Segment("active", 4, True),))


def test_single_amplifier_layout_from_biassec_trimsec():
    # ccdproc's SAAO frame a8280271.fits: 520 x 536, BIASSEC=[4:13,1:520], TRIMSEC=[17:528,1:520]
    lay = single_amplifier_layout((520, 536), "[4:13,1:520]", "[17:528,1:520]")
    assert lay.frame_shape == (520, 536) and lay.n_channels == 1
    frame = np.random.default_rng(2).normal(size=(520, 536))
    np.testing.assert_array_equal(region(frame, lay, 0, "overscan"), frame[:, 3:13])
    np.testing.assert_array_equal(region(frame, lay, 0, "active"), frame[:, 16:528])
    np.testing.assert_array_equal(assemble_active(region_stack(frame, lay, "active"), lay), frame[:, 16:528])
    assert parse_fits_section("[17:528,1:520]") == (slice(0, 520), slice(16, 528))
    with pytest.raises(ParameterError, match="overlap"):
        single_amplifier_layout((520, 536), "[4:20,1:520]", "[17:528,1:520]")
    with pytest.raises(ParameterError, match=r"\[x1:x2,y1:y2\]"):
        parse_fits_section("4:13,1:520")


def test_single_amplifier_layout_on_the_real_ccdproc_frame(ccdproc_raw_frame):
    fits = pytest.importorskip("astropy.io.fits")
    path = ccdproc_raw_frame
    with fits.open(path) as hdul:
        data, hdr = hdul[0].data.astype(np.float32), hdul[0].header
    lay = single_amplifier_layout(data.shape, hdr["BIASSEC"], hdr["TRIMSEC"])
    overscan, active = region(data, lay, 0, "overscan"), region(data, lay, 0, "active")
    assert active.shape == (520, 512)
    # a raw frame: the sky-exposed area sits above the overscan bias level (~214 ADU)
    assert 150 < np.median(overscan) < 300 and np.median(active) > np.median(overscan)


def test_layout_from_mapping_matches_the_factory_and_rejects_unknown_keys():
    mapping = {
        "name": "lamost", "channel_grid": [2, 2],
        "row_segments": [{"name": "optical_black", "size": 4, "collects_charge": True},
                         {"name": "active", "size": 1042, "collects_charge": True}, {"name": "discarded", "size": 1}],
        "column_segments": [{"name": n, "size": s, "collects_charge": c} for n, s, c in (
            ("prescan", 3, False), ("invalid", 1, False), ("amplifier", 4, False),
            ("optical_black", 4, True), ("active", 1042, True), ("overscan", 46, False))],
    }
    assert layout_from_mapping(mapping) == lamost_layout()
    with pytest.raises(ConfigError, match="unknown layout keys \\['gain'\\]"):
        layout_from_mapping({**mapping, "gain": 2.3})
    with pytest.raises(ConfigError, match="missing key 'channel_grid'"):
        layout_from_mapping({k: v for k, v in mapping.items() if k != "channel_grid"})
