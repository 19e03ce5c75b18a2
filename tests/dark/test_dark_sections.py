"""Amplifiers from FITS sections, frame layouts of several parts, training domains, bias masters."""

import numpy as np
import pytest
from astropy.io import fits

from dancekit.dark.cameras import frame_layout_from_config, quadrant_layout
from dancekit.dark.domain import domain_excursions, frame_conditions, training_domain
from dancekit.dark.frame_layout import (FrameLayout, frame_layout_from_mapping, frame_layout_to_mapping,
                                        same_frame_geometry, sections_frame_layout)
from dancekit.dark.inference import fit_frame_masters, fit_master_dark, predict_frame_dark, trimmed_active
from dancekit.dark.layout import region
from dancekit.dark.sections import amplifier_layout, amplifier_problems, header_amplifiers
from dancekit.dark.simulate import DarkCameraModel, camera_pattern, simulate_dark_frame
from dancekit.errors import InputError, ParameterError
from dancekit.io.config import load_config
from dancekit.io.config_schema import DarkConfig

# Lick Kast blue (the config): 350 x 2112, data [1:2048], both overscans after the data
KAST = (("[1:1024,1:350]", "[2049:2080,1:350]", ""), ("[1025:2048,1:350]", "[2081:2112,1:350]", ""))


def test_an_amplifier_is_a_one_channel_layout_of_the_whole_frame():
    lay = amplifier_layout((350, 2112), *KAST[1])
    frame = np.broadcast_to(np.arange(2112.0), (350, 2112))
    np.testing.assert_array_equal(region(frame, lay, 0, "active")[0], np.arange(1024, 2048))
    np.testing.assert_array_equal(region(frame, lay, 0, "overscan")[0], np.arange(2080, 2112))
    assert [s.name for s in lay.column_segments] == ["unused_0", "active", "unused_2", "overscan"]
    black = amplifier_layout((20, 40), "[5:30,3:20]", "[31:40,1:20]", "[1:4,3:20]")
    assert black.region_shape("ob_columns") == (18, 4) and black.region_shape("active") == (18, 26)


def test_amplifier_problems_name_every_bad_section():
    problems = amplifier_problems([KAST[0][:2] + ("",), ("[1:10,1:10", "[11:12,1:10]", ""),
                                   ("[5:20,1:350]", "[2081:2112,1:350]", ""), ("[1:1024,1:350]", "[1000:1080,1:350]", "")], (350, 2112))
    assert problems == [
        "amplifiers[1].data: FITS section must look like '[x1:x2,y1:y2]', got '[1:10,1:10'",
        "amplifiers[3].data [1:1024,1:350] and amplifiers[3].overscan [1000:1080,1:350] overlap in columns",
        "amplifiers[0].data and amplifiers[2].data overlap",
    ]
    assert amplifier_problems([("[1:100,1:10]", "[101:110,1:10]", "")], (10, 105)) == [
        "amplifiers[0].overscan [101:110,1:10] exceeds the 10 x 105 frame (rows x columns)"]
    assert amplifier_problems(KAST, (350, 2112)) == []


@pytest.mark.parametrize("cards, keys", [
    ({"DATASEC1": "[17:116,1:60]", "BIASSEC1": "[1:16,1:60]", "DATASEC2": "[117:216,1:60]", "BIASSEC2": "[217:232,1:60]"},
     [("DATASEC1", "BIASSEC1"), ("DATASEC2", "BIASSEC2")]),
    ({"ASECA": "[17:116,1:60]", "BSECA": "[1:16,1:60]", "ASECB": "[117:216,1:60]", "BSECB": "[217:232,1:60]"},
     [("ASECA", "BSECA"), ("ASECB", "BSECB")]),
    ({"TSEC11": "[17:116,1:60]", "DSEC11": "[17:116,1:60]", "BSEC11": "[1:16,1:60]", "TSEC12": "[117:216,1:60]",
      "BSEC12": "[217:232,1:60]", "BIASSEC": "[1:2,1:2]"}, [("TSEC11", "BSEC11"), ("TSEC12", "BSEC12")]),
])
def test_per_amplifier_header_keywords(cards, keys):
    header = fits.Header(cards)
    found = header_amplifiers(header)
    assert [k for *_, k in found] == keys
    frame = sections_frame_layout((60, 232), [(d, b, "") for _, d, b, _ in found])
    assert frame.trimmed_shape == (60, 200) and [p.origin for p in frame.parts] == [(0, 0), (0, 100)]


def test_header_sections_that_are_incomplete_are_named():
    assert header_amplifiers(fits.Header({"TRIMSEC": "[17:528,1:520]", "BIASSEC": "[4:13,1:520]", "DATASEC": "[1:2,1:2]"}))[0][1:3] \
        == ("[17:528,1:520]", "[4:13,1:520]")
    with pytest.raises(InputError, match=r"amplifiers 1, 2 but lacks BIASSEC2 \(for DATASEC2\)"):
        header_amplifiers(fits.Header({"DATASEC1": "[1:2,1:2]", "BIASSEC1": "[3:4,1:2]", "DATASEC2": "[5:6,1:2]"}))
    with pytest.raises(InputError, match=r"the header has DATASEC but no BIASSEC \(the overscan\); describe the amplifiers in a config"):
        header_amplifiers(fits.Header({"DATASEC": "[1:2048,1:350]", "COVER": 32}))


def test_a_frame_layout_places_each_amplifier_at_its_data():
    frame_layout = sections_frame_layout((350, 2112), KAST)
    raw = np.random.default_rng(0).normal(size=(350, 2112))
    np.testing.assert_array_equal(trimmed_active(raw, frame_layout), raw[:, :2048].astype(np.float32))
    blocks = frame_layout.split(raw[:, :2048])
    assert [b.shape for b in blocks] == [(1, 350, 1024), (1, 350, 1024)]
    np.testing.assert_array_equal(frame_layout.assemble(blocks), raw[:, :2048].astype(np.float32))
    again = frame_layout_from_mapping(frame_layout_to_mapping(frame_layout))
    assert same_frame_geometry(again, frame_layout) and not same_frame_geometry(FrameLayout.whole(quadrant_layout()), again)
    # data that do not tile: the gap is NaN, never an invented value
    gapped = sections_frame_layout((10, 40), [("[1:10,1:10]", "[31:35,1:10]", ""), ("[16:25,1:10]", "[36:40,1:10]", "")])
    image = trimmed_active(np.ones((10, 40)), gapped)
    assert image.shape == (10, 25) and np.isnan(image[:, 10:15]).all() and (image[:, :10] == 1).all()


def test_each_amplifier_loses_its_own_overscan_level():
    """The issue's 'done when': a two-amplifier frame described only by the config gives, with the
    overscan method, each amplifier's data area minus its own overscan level."""
    rng = np.random.default_rng(1)
    rows = np.arange(350.0)[:, None]
    bias = (1023.7 + 0.02 * rows, 1187.3 - 0.015 * rows)
    raw = np.empty((350, 2112))
    for b, data, over in zip(bias, (slice(0, 1024), slice(1024, 2048)), (slice(2048, 2080), slice(2080, 2112))):
        raw[:, data], raw[:, over] = b + 50.0, b
    raw += rng.normal(0, 4.0, raw.shape)
    cfg = load_config("lamost", DarkConfig, ["detector.layout=sections", "detector.amplifiers=" + str(
        [{"data": d, "overscan": o} for d, o, _ in KAST])])
    frame_layout = frame_layout_from_config(cfg.detector, raw.shape, {})
    dark = predict_frame_dark("overscan", raw, frame_layout)
    assert dark.shape == (350, 2048)
    for b, cols in zip(bias, (slice(0, 1024), slice(1024, 2048))):
        assert np.abs(dark[:, cols] - b).max() < 0.6  # a degree-3 fit through 350 medians of 32 samples
    reduced = trimmed_active(raw, frame_layout) - dark
    assert abs(reduced[:, :1024].mean() - 50.0) < 0.05 and abs(reduced[:, 1024:].mean() - 50.0) < 0.05


def test_a_quadrant_config_says_how_to_describe_another_camera():
    cfg = load_config("lamost", DarkConfig)
    with pytest.raises(InputError, match=r"raw frame shape \(350, 2112\) .* does not match layout 'KAF-4320' .*'base: lamost' "
                                         r"and 'detector: \{layout: sections, amplifiers: .*; the header has DATASEC \[1:2048,1:350\]"):
        frame_layout_from_config(cfg.detector, (350, 2112), {"DATASEC": "[1:2048,1:350]"})
    with pytest.raises(InputError, match=r"its header describes 1 amplifier\(s\) \(BIASSEC, TRIMSEC\): add --set detector.layout=fits-sections"):
        frame_layout_from_config(cfg.detector, (520, 536), {"BIASSEC": "[4:13,1:520]", "TRIMSEC": "[17:528,1:520]"})
    sections = load_config("lamost", DarkConfig, ["detector.layout=fits-sections", "detector.rows=520", "detector.columns=530"])
    with pytest.raises(InputError, match=r"differs from the config's detector.rows x columns 520 x 530"):
        frame_layout_from_config(sections.detector, (520, 536), {"BIASSEC": "[4:13,1:520]", "TRIMSEC": "[17:528,1:520]"})
    with pytest.raises(InputError, match=r"BIASSEC \[4:13,1:600\] exceeds the 520 x 536 frame"):
        frame_layout_from_config(sections.detector.__class__(name="x", saturation=1.0, layout="fits-sections"), (520, 536),
                                 {"BIASSEC": "[4:13,1:600]", "TRIMSEC": "[17:528,1:520]"})


# ------------------------------------------------------------------ training domain
def test_domain_excursions_in_range_widths():
    domain = training_domain([{"bias": [1000.0, 1010.0], "dark": [40.0], "temperature": [-25.0]},
                              {"bias": [1005.0], "dark": [100.0], "temperature": [-15.0], "exptime": [30.0]}])
    assert domain == {"frames": 2, "bias": [1000.0, 1010.0], "dark": [40.0, 100.0], "temperature": [-25.0, -15.0]}
    inside = domain_excursions(domain, {"bias": [1002.0], "dark": [60.0, 70.0], "temperature": [-20.0]})
    assert [e.distance for e in inside] == [0.0, 0.0, 0.0]
    warm = domain_excursions(domain, {"bias": [1002.0], "dark": [60.0, 130.0], "temperature": [-10.0]})
    assert (warm[0].quantity, warm[0].distance) == ("dark", pytest.approx(0.5)) and warm[1].distance == pytest.approx(0.5)
    assert warm[0].describe() == "dark level above bias 60..130 ADU, trained 40..100 ADU: 0.50 range widths outside"
    # a range of one value still has a scale: 5 % of the level (exposure), 2 deg C (temperature)
    one = training_domain([{"exptime": [30.0], "temperature": [-15.0]}])
    far = {e.quantity: e.distance for e in domain_excursions(one, {"exptime": [60.0], "temperature": [-14.0]})}
    assert far == {"exptime": pytest.approx(10.0), "temperature": pytest.approx(0.5)}


def test_frame_conditions_measure_the_simulated_levels():
    layout = quadrant_layout(active=48, overscan=16)
    model = DarkCameraModel(temperature_jitter=0.0, glow=0.0)
    frame = simulate_dark_frame(layout, camera_pattern(layout, model, 0), -15.0, 30.0, seed=3, model=model)
    cond = frame_conditions(frame.raw, layout, -15.0, 30.0)
    assert len(cond["bias"]) == 4 and all(abs(b - 1000) < 80 for b in cond["bias"])
    # 240 e- in 30 s at -15 C through 2.3 e-/ADU: ~104 ADU of dark in the optical black
    assert np.allclose(cond["dark"], 240 / 2.3, rtol=0.15) and cond["temperature"] == [-15.0]


# ------------------------------------------------------------------ masters
def test_a_master_of_biases_says_why_its_template_is_nan():
    layout = quadrant_layout(active=48, overscan=16)
    model = DarkCameraModel(glow=0.0)
    pattern = camera_pattern(layout, model, 0)
    biases = np.stack([simulate_dark_frame(layout, pattern, -15.0, 0.0, seed=i, model=model).raw for i in range(3)])
    master = fit_master_dark(biases, layout)
    assert not master.has_template and "none of the 3 frames holds a measurable dark in its optical black" in master.template_note
    np.testing.assert_allclose(np.median(master.median), 1000, atol=80)  # the median still is a master bias
    darks = np.stack([simulate_dark_frame(layout, pattern, -15.0, 30.0, seed=10 + i, model=model).raw for i in range(2)])
    mixed = fit_master_dark(np.concatenate([biases, darks]), layout)
    assert mixed.has_template and mixed.template_note == "3 of 5 frames without a measurable dark in the optical black (biases?) were left out of the template"
    from dancekit.dark.inference import predict_active_dark

    with pytest.raises(InputError, match="TEMPLATE is all NaN"):
        predict_active_dark("scaled", darks[0], layout, master=master)


def test_scaled_dark_of_section_amplifiers_with_optical_black():
    """Two amplifiers each with masked columns: the scaled method recovers a dark level it never saw."""
    amps = [("[5:24,1:30]", "[51:58,1:30]", "[1:4,1:30]"), ("[25:44,1:30]", "[59:66,1:30]", "[45:48,1:30]")]
    frame_layout = sections_frame_layout((30, 66), amps)
    rng = np.random.default_rng(4)
    pattern = rng.uniform(0.5, 1.5, (30, 40))  # per-pixel dark per unit level over the data box

    def frame(level):
        raw = np.empty((30, 66))
        raw[:, 4:44] = 500 + level * pattern
        raw[:, 0:4] = raw[:, 44:48] = 500 + level
        raw[:, 50:66] = 500
        return raw + rng.normal(0, 0.5, raw.shape)

    masters = fit_frame_masters(np.stack([frame(level) for level in (20.0, 40.0, 60.0)]), frame_layout)
    warm = frame(90.0)
    truth = 500 + 90 * pattern
    scaled = predict_frame_dark("scaled", warm, frame_layout, masters=masters)
    median = predict_frame_dark("median", warm, frame_layout, masters=masters)
    rms = {name: np.sqrt(np.mean((d - truth) ** 2)) for name, d in (("scaled", scaled), ("median", median))}
    # the template's noise (0.5 ADU / level 20..60, median of 3) times 90: ~1 ADU; the median misses 50 x pattern
    assert rms["scaled"] < 2.0 and rms["scaled"] < 0.05 * rms["median"]
    with pytest.raises(ParameterError, match="overlap"):
        sections_frame_layout((30, 66), [amps[0], ("[20:44,1:30]", "[59:66,1:30]", "")])
