"""Configs: the shipped ones validate; bad YAML, unknown keys and wrong types name the key."""

import pytest

from dancekit.errors import ConfigError
from dancekit.io.config import config_hash, load_config
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
