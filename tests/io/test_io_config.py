"""Configs: the shipped ones validate; bad YAML, unknown keys and wrong types name the key."""

import numpy as np
import pytest

from dancekit.errors import ConfigError
from dancekit.io.config import config_hash, load_config, read_yaml, shipped_configs
from dancekit.io.config_schema import AOConfig, DarkConfig, VideoConfig


def test_shipped_configs_hold_the_papers_hardware():
    c2pu = load_config("c2pu", VideoConfig)
    assert (c2pu.telescope.aperture, c2pu.telescope.obstruction, c2pu.optics.wavelength) == (1.04, 0.30, 6.5e-7)
    assert (c2pu.camera.pixel_scale, c2pu.camera.frame_rate, c2pu.camera.read_noise) == (0.235, 5.25, 1.0)
    assert c2pu.unet.context == 64 and c2pu.unet.tile == 256
    naomi = load_config("naomi", AOConfig)
    assert (naomi.telescope.diameter, naomi.telescope.obstruction, naomi.loop.delay) == (1.8, 0.077, 4.6e-3)
    assert (naomi.wavefront_sensor.lenslets, naomi.wavefront_sensor.valid_subapertures) == (4, 12)
    assert (naomi.reference.r0, naomi.reference.L0, naomi.reference.n_layers) == (0.146, 18.9, 9)
    lamost = load_config("lamost", DarkConfig)
    cols = lamost.detector.channel_columns
    assert (lamost.detector.rows, lamost.detector.columns) == (2094, 2200)
    assert (cols.prescan, cols.invalid, cols.amplifier, cols.optical_black, cols.active, cols.overscan) == (3, 1, 4, 4, 1042, 46)
    assert lamost.dark_current.doubling_temperature == 6.4 and lamost.dark_current.reference_electrons == 240


def write(tmp_path, text):
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return str(path)


def c2pu_text():
    from importlib import resources

    return resources.files("dancekit.configs").joinpath("c2pu.yaml").read_text()


def test_unknown_key_is_named(tmp_path):
    path = write(tmp_path, c2pu_text().replace("  wavelength: 6.5e-7", "  wavelenght: 6.5e-7"))
    with pytest.raises(ConfigError, match=r"cfg.yaml: unknown key 'optics.wavelenght'"):
        load_config(path, VideoConfig)


def test_wrong_type_is_named(tmp_path):
    path = write(tmp_path, c2pu_text().replace("frame_rate: 5.25", "frame_rate: fast"))
    with pytest.raises(ConfigError, match=r"'camera.frame_rate' must be a number, got a string 'fast'"):
        load_config(path, VideoConfig)


def test_list_item_types_are_checked(tmp_path):
    path = write(tmp_path, c2pu_text().replace("cn2_fraction: 0.25", "cn2_fraction: [0.25]"))
    with pytest.raises(ConfigError, match=r"'atmosphere.layers\[1\].cn2_fraction' must be a number"):
        load_config(path, VideoConfig)


def test_malformed_yaml(tmp_path):
    path = write(tmp_path, "kind: video\ntelescope: [unclosed\n")
    with pytest.raises(ConfigError, match="malformed YAML at line"):
        load_config(path, VideoConfig)


def test_range_checks_and_kind(tmp_path):
    path = write(tmp_path, c2pu_text().replace("obstruction: 0.30", "obstruction: 1.5"))
    with pytest.raises(ConfigError, match=r"telescope.obstruction must be in \[0, 1\), got 1.5"):
        load_config(path, VideoConfig)
    with pytest.raises(ConfigError, match="is a 'ao' config, this command needs a 'video' config"):
        load_config("naomi", VideoConfig)


def test_overrides_and_hash():
    base = load_config("c2pu", VideoConfig)
    changed = load_config("c2pu", VideoConfig, ["optics.wavelength=5e-7", "atmosphere.seeing=0.8"])
    assert changed.optics.wavelength == 5e-7 and changed.atmosphere.seeing == 0.8
    assert config_hash(changed) != config_hash(base) == config_hash(load_config("c2pu", VideoConfig))
    with pytest.raises(ConfigError, match="unknown key 'optics.colour'"):
        load_config("c2pu", VideoConfig, ["optics.colour=red"])
    with pytest.raises(ConfigError, match="'optics.wavelength' must be a number"):
        load_config("c2pu", VideoConfig, ["optics.wavelength=blue"])


@pytest.mark.parametrize(
    "edit, message",
    [
        (("  wavelength: 6.5e-7", "  wavelenght: 6.5e-7"), "unknown key 'optics.wavelenght'"),
        (("read_noise: 1.0", "read_noise: [1]"), "'camera.read_noise' must be a number"),
        (("kind: video", "kind: video\n  bad: [indent"), "malformed YAML"),
    ],
)
def test_config_errors_through_the_cli(cli, tmp_path, edit, message):
    path = write(tmp_path, c2pu_text().replace(*edit))
    result = cli("config", "check", path)
    assert result.returncode == 2
    err = result.stderr.decode()
    assert err.startswith(f"error: {path}: ") and message in err and len(err.strip().splitlines()) == 1
    assert cli("config", "check", "c2pu", "naomi", "lamost").returncode == 0


def test_config_show_prints_the_resolved_yaml(cli):
    import json

    import yaml

    result = cli("config", "show", "naomi", "--set", "loop.frame_rate=250")
    assert result.returncode == 0
    shown = yaml.safe_load(result.stdout)
    assert shown["loop"]["frame_rate"] == 250 and shown["telescope"]["diameter"] == 1.8
    as_json = json.loads(cli("config", "show", "naomi", "--json").stdout)
    assert as_json["config"]["loop"]["frame_rate"] == 500 and len(as_json["hash"]) == 16
    listing = cli("config", "list").stdout.decode().split("\n")
    assert [line.split("\t")[:2] for line in listing if line] == [["c2pu", "video"], ["lamost", "dark"], ["naomi", "ao"]]


# ------------------------------------------------------------------ reading: encoding, duplicates, base
def test_a_binary_config_exits_2_naming_the_file(cli, tmp_path):
    """The issue's case: a 4 KiB non-UTF-8 file given as --config was an 'internal error' (exit 1)."""
    path = tmp_path / "camera.yaml"
    path.write_bytes(bytes(np.random.default_rng(3).integers(0, 256, 4096, dtype=np.uint8)) + b"\xff")
    with pytest.raises(ConfigError, match=r"camera.yaml: is not UTF-8 text \(byte 0x[0-9a-f]{2} at offset \d+\)"):
        load_config(str(path), DarkConfig)
    for args in (("config", "check", path), ("simulate-dark", "-c", path, "-o", tmp_path / "out")):
        r = cli(*args)
        err = r.stderr.decode()
        assert r.returncode == 2 and err.startswith(f"error: {path}: is not UTF-8 text") and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


def test_duplicated_keys_are_refused_at_any_depth_with_both_lines(tmp_path):
    text = c2pu_text()
    # a key twice at the top of a section, and inside the second item of a list of layers
    dup_section = write(tmp_path, text.replace("  wavelength: 6.5e-7", "  wavelength: 6.5e-7\n  wavelength: 5.0e-7"))
    line = text[:text.index("  wavelength: 6.5e-7")].count("\n") + 1
    with pytest.raises(ConfigError, match=rf"duplicated key 'optics.wavelength' at line {line + 1} \(first at line {line}\)"):
        load_config(dup_section, VideoConfig)
    layers = "kind: video\natmosphere:\n  layers:\n    - altitude: 0.0\n    - altitude: 10.0\n      L0: 25.0\n      L0: 20.0\n"
    with pytest.raises(ConfigError, match=r"duplicated key 'atmosphere.layers\[1\].L0' at line 7 \(first at line 6\)"):
        load_config(write(tmp_path, layers), VideoConfig)


@pytest.mark.parametrize("name", shipped_configs())
def test_shipped_configs_have_no_duplicated_key(name):
    """configs/naomi.yaml once held its simulation block twice; the loader now refuses that."""
    data, _ = read_yaml(name)  # refuses duplicates
    assert data["kind"] in ("video", "ao", "dark")
    from importlib import resources

    text = resources.files("dancekit.configs").joinpath(f"{name}.yaml").read_text()
    assert len(text.encode()) == len(text.encode("utf-8"))


KAST = """base: lamost
detector:
  layout: sections
  amplifiers:
    - {data: "[1:1024,1:350]", overscan: "[2049:2080,1:350]"}
    - {data: "[1025:2048,1:350]", overscan: "[2081:2112,1:350]"}
"""


def test_base_config_gives_what_the_child_does_not_say(tmp_path):
    cfg = load_config(write(tmp_path, KAST), DarkConfig)
    lamost = load_config("lamost", DarkConfig)
    assert cfg.kind == "dark" and cfg.operation == lamost.operation and cfg.detector.saturation == 65535.0
    assert cfg.detector.layout == "sections" and [a.overscan for a in cfg.detector.amplifiers] == ["[2049:2080,1:350]", "[2081:2112,1:350]"]
    # changing the layout drops the base's quadrant geometry instead of mixing two cameras
    assert (cfg.detector.rows, cfg.detector.columns, cfg.detector.channel_columns) == (0, 0, None)
    # a child of the child, by relative path; a changed value; --set on top
    (tmp_path / "sub").mkdir()
    child = tmp_path / "sub" / "warm.yaml"
    child.write_text("base: ../cfg.yaml\noperation:\n  temperature: -5.0\n")
    warm = load_config(str(child), DarkConfig, ["detector.name=Kast-blue"])
    assert warm.operation.temperature == -5.0 and warm.operation.gain == 2.3 and warm.detector.name == "Kast-blue"
    assert len(warm.detector.amplifiers) == 2
    # the same layout keeps the base's geometry: only the changed key differs
    same = load_config(write(tmp_path, "base: lamost\ndetector:\n  rows: 2094\n"), DarkConfig)
    assert same.detector == lamost.detector


def test_bad_bases_are_named(tmp_path):
    with pytest.raises(ConfigError, match=r"cfg.yaml: its base 'nosuch': nosuch: no such config"):
        load_config(write(tmp_path, "base: nosuch\n"), DarkConfig)
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(ConfigError, match="'base' chain loops"):
        load_config(str(tmp_path / "a.yaml"), DarkConfig)
    with pytest.raises(ConfigError, match="'base' must name a shipped config"):
        load_config(write(tmp_path, "base: [lamost]\n"), DarkConfig)


def test_a_minimal_config_reports_every_problem_at_once(cli, tmp_path):
    text = """kind: dark
detector:
  layout: sections
  amplifiers:
    - {data: "[1:1024,1:350]", overscan: "[1000:1080,1:350]"}
    - {data: "[1025:2048,1:350", overscan: "[2081:2112,1:350]"}
    - {data: "[1:10,1:10]", overscan: "[11:12,1:10]", gain: 2}
operation: {temperature: cold, exptime: 1.0, gain: 1.0, read_noise: 3.0, bias: 0.0}
"""
    path = write(tmp_path, text)
    r = cli("config", "check", path)
    err = r.stderr.decode()
    assert r.returncode == 2 and err.count("\n") == 1 and "8 problems:" in err, err
    for expected in ("missing key 'instrument'", "missing key 'detector.name'", "missing key 'detector.saturation'",
                     "detector.amplifiers[0].data [1:1024,1:350] and detector.amplifiers[0].overscan [1000:1080,1:350] overlap",
                     "missing key 'dark_current'",
                     "detector.amplifiers[1].data: FITS section must look like", "unknown key 'detector.amplifiers[2].gain'",
                     "'operation.temperature' must be a number, got a string 'cold'"):
        assert expected in err, expected
    # range checks of complete sections come together too
    bad_ranges = c2pu_text().replace("aperture: 1.04", "aperture: -1").replace("obstruction: 0.30", "obstruction: 1.5")
    with pytest.raises(ConfigError, match=r"2 problems: telescope.aperture must be > 0 m, got -1.0; telescope.obstruction must be in"):
        load_config(write(tmp_path, bad_ranges), VideoConfig)


def test_config_check_says_valid(cli, tmp_path):
    r = cli("config", "check", "lamost", write(tmp_path, KAST))
    out = r.stdout.decode().splitlines()
    assert r.returncode == 0 and len(out) == 2, r.stderr.decode()
    assert out[0].startswith("lamost: valid dark config, instrument LAMOST-guide, hash ")
    assert out[1].startswith(f"{tmp_path / 'cfg.yaml'}: valid dark config")


def test_set_reaches_defaults_and_names_unknown_keys():
    cfg = load_config("lamost", DarkConfig, ["model.crop=64", "detector.layout=fits-sections"])
    assert cfg.model.crop == 64 and cfg.detector.layout == "fits-sections" and cfg.detector.channel_columns is None
    with pytest.raises(ConfigError, match=r"--set: unknown key 'detector.colour' \(no section 'detector' with it; allowed here: name"):
        load_config("lamost", DarkConfig, ["detector.colour=red"])
    with pytest.raises(ConfigError, match=r"'detector.name' is a value, not a section"):
        load_config("lamost", DarkConfig, ["detector.name.first=x"])
