"""AOT (aotpy) and modal-FITS telemetry: round trips, what is read from where, and refusals."""

import numpy as np
import pytest
from astropy.io import fits

from dancekit.ao.pseudo_open_loop import from_radians_at_500nm, to_radians_at_500nm
from dancekit.errors import InputError, ParameterError
from dancekit.io.aot import read_telemetry
from dancekit.io.aot_write import LoopRecord, MonitorRecord, write_aot, write_modal_fits
from dancekit.io.interaction_matrix import read_interaction_matrix
from dancekit.io.provenance import Provenance

T, M, S, A = 300, 14, 12, 241


def _arrays(seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(T, 2, S)), rng.normal(size=(M, 2, S)), rng.normal(size=(T, A)),
            rng.normal(size=(M, A)))


def _aot(path, closed=True, extra_loops=(), monitor=None, **kw):
    slopes, s2m, commands, c2m = _arrays()
    args = dict(slopes=slopes, slopes_to_modes=s2m, frame_rate=250.0, delay=2.0, closed_loop=closed,
                commands=commands if closed else None, commands_to_modes=c2m if closed else None)
    args.update(kw)
    write_aot(str(path), [LoopRecord("main loop", **args), *extra_loops], diameter=1.8, obstruction=0.077,
              elevation=30.0, monitor=monitor, truth={"r0": 0.1, "seeing": 1.0}, cards={"SIMR0": (0.1, "[m]")},
              provenance=Provenance("dancekit test", seed=7))
    return slopes, s2m, commands, c2m


def _one(path):
    loops, errors = read_telemetry(str(path))
    assert len(loops) == 1 and errors == []
    return loops[0]


def test_aot_round_trip_keeps_arrays_and_loop_parameters(tmp_path):
    path = tmp_path / "t.fits"
    slopes, s2m, commands, c2m = _aot(path)
    tel = _one(path)
    assert tel.format == "aot" and tel.closed_loop and tel.n_frames == T and tel.loop_name == "main loop"
    assert np.array_equal(tel.slopes, slopes) and np.array_equal(tel.slopes_to_modes, s2m)
    assert np.array_equal(tel.commands, commands) and np.array_equal(tel.commands_to_modes, c2m)
    assert (tel.frame_rate, tel.delay, tel.diameter) == (250.0, 2.0, 1.8)
    assert tel.obstruction == pytest.approx(0.077)
    assert tel.airmass == pytest.approx(2.0) and tel.elevation == 30.0  # 1 / sin(30 deg)
    assert tel.truth["r0"] == pytest.approx(0.1)
    assert tel.modal_unit is None and tel.noll_min is None  # as the NAOMI translator: not stated
    assert tel.interaction is None and tel.monitor is None  # the truth row is not a site monitor
    header = fits.getheader(path)
    assert header["AOT-VERS"] and header["DKSEED"] == 7 and "CHECKSUM" in header
    assert "dancekit test" in str(header["HISTORY"])


def test_aot_written_by_dancekit_reads_back_with_plain_aotpy(tmp_path):
    import aotpy

    path = tmp_path / "t.fits"
    slopes, *_ = _aot(path, closed=False)
    system = aotpy.AOSystem.read_from_file(str(path))
    loop = system.loops[0]
    assert loop.closed is False and loop.framerate == 250.0 and loop.commands is None
    assert np.array_equal(loop.input_sensor.measurements.data, slopes)


def test_open_loop_aot_needs_no_commands(tmp_path):
    path = tmp_path / "t.fits"
    _aot(path, closed=False)
    tel = _one(path)
    assert not tel.closed_loop and tel.commands is None


def test_closed_loop_without_commands_is_refused(tmp_path):
    path = tmp_path / "t.fits"
    _aot(path, closed=True, commands=None, commands_to_modes=None)
    loops, errors = read_telemetry(str(path))
    assert loops == [] and len(errors) == 1
    assert str(errors[0]).startswith(f"{path}: loop 'main loop': closed loop without DM commands")


def test_every_control_loop_is_read_and_a_bad_one_is_named(tmp_path):
    path = tmp_path / "t.fits"
    rng = np.random.default_rng(3)
    second = LoopRecord("tip-tilt loop", slopes=rng.normal(size=(T, 2, 4)), slopes_to_modes=rng.normal(size=(2, 2, 4)),
                        frame_rate=1000.0, delay=1.0, closed_loop=False)
    broken = LoopRecord("broken loop", slopes=rng.normal(size=(T, 2, 4)), slopes_to_modes=rng.normal(size=(2, 2, 5)),
                        frame_rate=1000.0, delay=1.0, closed_loop=False)
    _aot(path, extra_loops=(second, broken))
    loops, errors = read_telemetry(str(path))
    assert [t.loop_name for t in loops] == ["main loop", "tip-tilt loop"]
    assert loops[1].frame_rate == 1000.0 and loops[1].slopes.shape == (T, 2, 4) and not loops[1].closed_loop
    assert [str(e) for e in errors] == [f"{path}: loop 'broken loop': measurements-to-modes (2, 2, 5) does not "
                                        "match the measurements (2, 4)"]


def test_site_monitor_and_sensor_matrix_round_trip(tmp_path):
    path = tmp_path / "t.fits"
    m2s = np.random.default_rng(4).normal(size=(S, 2, 44))
    monitor = MonitorRecord("ESO ASM", wavelength=500e-9, seeing=0.87, r0=0.116, layers_l0=(20.0, 40.0),
                            layers_weight=(0.7, 0.3), layers_height=(0.0, 8000.0))
    _aot(path, closed=False, monitor=monitor, modes_to_slopes=m2s)
    tel = _one(path)
    assert (tel.monitor.name, tel.monitor.seeing, tel.monitor.r0, tel.monitor.wavelength) == ("ESO ASM", 0.87, 0.116, 5e-7)
    assert np.array_equal(tel.monitor.layers_l0, [20.0, 40.0]) and np.array_equal(tel.monitor.layers_weight, [0.7, 0.3])
    # (S, 2, M) in the file -> (2S, M) with the x slopes first
    assert tel.interaction.matrix.shape == (2 * S, 44) and tel.interaction.noll(2) == tuple(range(2, 46))
    assert np.array_equal(tel.interaction.matrix[:S], m2s[:, 0]) and np.array_equal(tel.interaction.matrix[S:], m2s[:, 1])


@pytest.mark.parametrize("order", ["xxyy", "xyxy"])
def test_interaction_matrix_file_layouts(tmp_path, order):
    g = np.random.default_rng(5).normal(size=(2 * S, 44))  # x1..xS, y1..yS
    stored = g if order == "xxyy" else np.stack([g[:S], g[S:]], axis=1).reshape(2 * S, 44)  # x1, y1, x2, ...
    hdu = fits.ImageHDU(stored, name="G")
    hdu.header.update(NOLLMIN=2, SLOPEORD=order)
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(tmp_path / "g.fits")
    matrix = read_interaction_matrix(str(tmp_path / "g.fits"))  # G found without naming it
    assert np.array_equal(matrix.matrix, g) and matrix.noll(7) == tuple(range(2, 46))
    assert matrix.name == f"{tmp_path / 'g.fits'}[G]"
    aot_layout = np.stack([g[:S], g[S:]], axis=1)  # (S, 2, modes)
    fits.PrimaryHDU(aot_layout).writeto(tmp_path / "g3.fits")
    assert np.array_equal(read_interaction_matrix(str(tmp_path / "g3.fits") + "[0]").matrix, g)


@pytest.mark.parametrize("data, header, message", [
    (np.zeros((24, 44)), {}, "all zeros"),
    (np.ones((23, 44)), {}, "even number of slopes"),
    (np.ones((24, 44)), {"SLOPEORD": "yxyx"}, "SLOPEORD = 'yxyx' is not one of xxyy, xyxy"),
    (np.ones((12, 3, 44)), {}, "must be \\(subapertures, 2, modes\\)"),
])
def test_malformed_interaction_matrix_is_refused(tmp_path, data, header, message):
    hdu = fits.PrimaryHDU(data)
    hdu.header.update(header)
    hdu.writeto(tmp_path / "g.fits")
    with pytest.raises(InputError, match=message):
        read_interaction_matrix(str(tmp_path / "g.fits"))


def test_aot_without_loop_tables_is_refused(tmp_path):
    path, broken = tmp_path / "t.fits", tmp_path / "broken.fits"
    _aot(path)
    with fits.open(path) as hdus:
        fits.HDUList([h for h in hdus if h.name not in ("AOT_LOOPS", "AOT_LOOPS_CONTROL")]).writeto(broken)
    with pytest.raises(InputError, match="without the AOT_LOOPS, AOT_LOOPS_CONTROL table"):
        read_telemetry(str(broken))


def test_plain_image_is_not_telemetry(tmp_path):
    path = tmp_path / "image.fits"
    fits.PrimaryHDU(np.zeros((8, 8))).writeto(path)
    with pytest.raises(InputError, match="not AO telemetry"):
        read_telemetry(str(path))


def test_modal_round_trip_and_header_contract(tmp_path):
    path = tmp_path / "m.fits"
    modes = np.random.default_rng(1).normal(size=(T, M))
    write_modal_fits(str(path), modes, noll_min=2, unit="rad", wavelength=1.65e-6, frame_rate=500.0,
                     diameter=1.8, obstruction=0.077, airmass=1.3)
    tel = _one(path)
    assert tel.format == "modal" and np.allclose(tel.modes, modes) and tel.interaction is None
    assert (tel.noll_min, tel.modal_unit, tel.wavelength, tel.frame_rate, tel.airmass) == (2, "rad", 1.65e-6, 500.0, 1.3)
    assert (fits.getheader(path)["NOLLMAX"], fits.getheader(path)["POL"]) == (15, True)
    assert tel.elevation == pytest.approx(np.degrees(np.arcsin(1 / 1.3)))


def test_modal_fits_carries_its_interaction_matrix(tmp_path):
    path = tmp_path / "m.fits"
    g = np.random.default_rng(2).normal(size=(2 * S, 44))
    write_modal_fits(str(path), np.zeros((T, M)), noll_min=2, unit="rad", wavelength=5e-7, frame_rate=500.0,
                     diameter=1.8, obstruction=0.077, interaction=g)
    tel = _one(path)
    assert np.array_equal(tel.interaction.matrix, g) and tel.interaction.noll(9) == tuple(range(2, 46))
    assert tel.interaction.name == f"{path}[G]"


@pytest.mark.parametrize("edit, message", [
    (lambda h: h.update(POL=False), "POL != T"),
    (lambda h: h.remove("BUNIT"), "without BUNIT"),
    (lambda h: h.update(NOLLMAX=20), "NOLLMIN..NOLLMAX = 2..20 is 19 modes but the image has 14"),
])
def test_malformed_modal_fits_is_refused(tmp_path, edit, message):
    path = tmp_path / "m.fits"
    hdu = fits.PrimaryHDU(np.zeros((T, M)))
    hdu.header.update(NOLLMIN=2, NOLLMAX=15, BUNIT="rad", WAVELEN=5e-7, FRAMERAT=500.0, POL=True)
    edit(hdu.header)
    hdu.writeto(path)
    with pytest.raises(InputError, match=message):
        read_telemetry(str(path))


def test_modal_units_convert_to_radians_at_500nm():
    # 1 um of wavefront is 2 pi / 0.5 rad at 500 nm (Turlib's NAOMI factor); phase scales as 1/lambda
    assert to_radians_at_500nm(1.0, "um") == pytest.approx(2 * np.pi / 0.5)
    assert to_radians_at_500nm(1e-6, "m") == pytest.approx(to_radians_at_500nm(1000.0, "nm"))
    assert to_radians_at_500nm(1.0, "rad", 1e-6) == pytest.approx(2.0)
    assert from_radians_at_500nm(to_radians_at_500nm(0.3, "um"), "um") == pytest.approx(0.3)
    with pytest.raises(ParameterError, match="unknown modal unit 'arcsec'"):
        to_radians_at_500nm(1.0, "arcsec")
    with pytest.raises(ParameterError, match="need the wavelength"):
        to_radians_at_500nm(1.0, "rad")
