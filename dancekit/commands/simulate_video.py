"""``dancekit simulate-video``: turbulent short-exposure video of a star field, with its truth."""

# No "from __future__ import annotations" in command modules: typer reads the live Annotated types.

import functools
import math
from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Any, Optional

import numpy as np
import typer
from astropy.io import fits

from dancekit.commands import options as opt
from dancekit.commands.execution import make_products, product_index
from dancekit.commands.runtime import cli_command, log, progress
from dancekit.errors import DancekitError, InputError, ParameterError
from dancekit.io.config import config_hash, load_config
from dancekit.io.config_schema import VideoConfig
from dancekit.io.fits_out import check_output
from dancekit.io.memory import available_memory, format_bytes
from dancekit.io.provenance import Provenance

SCREEN_BUILD_BYTES = 100  # measured peak bytes per screen pixel while a screen is generated
M92 = (259.28076, 43.13594)  # deg, ICRS centre of M92 (Harris 1996, 2010 edition): the default pointing


class ClusterProfile(str, Enum):
    king = "king"
    plummer = "plummer"


class Propagation(str, Enum):
    fresnel = "fresnel"
    geometric = "geometric"


def parse_size(text: str) -> tuple[int, int]:
    """``256`` or ``HxW`` (rows x columns) in pixels."""
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError:
        raise ParameterError(f"'{text}' is not N or HxW in pixels", source="--size") from None
    shape = (parts[0], parts[0]) if len(parts) == 1 else tuple(parts)
    if len(shape) != 2 or min(shape) < 8:
        raise ParameterError(f"'{text}': need N or HxW with each side >= 8 pixels", source="--size")
    return shape


@cli_command
def simulate_video(
    output: opt.Output,
    config: opt.Config = "c2pu",
    overrides: opt.Set = None,
    frames: Annotated[int, typer.Option("--frames", help="Number of frames (160 = 30 s at 5.25 frames/s).")] = 160,
    size: Annotated[str, typer.Option("--size", help="Frame size in pixels: N or HxW.")] = "256",
    seeing: Annotated[Optional[float], typer.Option("--seeing", help="Seeing FWHM at 500 nm at zenith [arcsec]; drawn from the config when absent.")] = None,
    r0: Annotated[Optional[float], typer.Option("--r0", help="Fried parameter at 500 nm [m], instead of --seeing.")] = None,
    stars: Annotated[Optional[str], typer.Option("--stars", help="Number of stars N, or MIN:MAX to draw it per video (random field default: 3:2000; cluster: 12000).")] = None,
    cluster: Annotated[Optional[ClusterProfile], typer.Option("--cluster", help="Draw a globular cluster with this profile (M92-like radii).")] = None,
    catalog: Annotated[Optional[str], typer.Option("--catalog", help="FITS table of stars: x/y (0-based px) or ra/dec (deg), and mag.")] = None,
    catalog_offset: Annotated[float, typer.Option("--catalog-offset", help="Random shift of the catalogue, up to this fraction of the field (<= 0.5).")] = 0.0,
    ra: Annotated[float, typer.Option("--ra", help="Right ascension of the field centre [deg] (default: M92).")] = M92[0],
    dec: Annotated[float, typer.Option("--dec", help="Declination of the field centre [deg].")] = M92[1],
    mag_max: Annotated[float, typer.Option("--mag-max", help="Faintest magnitude drawn (the paper: 21).")] = 21.0,
    mag_min: Annotated[float, typer.Option("--mag-min", help="Brightest magnitude drawn.")] = 12.0,
    propagation: Annotated[Optional[Propagation], typer.Option("--propagation", help="fresnel (scintillation) or geometric (faster); default from config.")] = None,
    seed: opt.Seed = None,
    device: opt.Device = opt.DeviceChoice.auto,
    overwrite: opt.Overwrite = False,
    as_json: opt.Json = False,
    count: opt.Count = None,
    scheduler: opt.Scheduler = None,
):
    """Simulate a turbulent short-exposure video of a star field, with its truth.

    Multi-layer von Kármán screens move with the wind over the pupil; light is propagated layer by layer (split-step Fresnel) or the phases summed (geometric); every star has its own PSF (anisoplanatism); each frame integrates the turbulence over its exposure; then sky, Poisson and read noise. The output has the cube (T, H, W), a TRUTH image with the same optics and pixels but no atmosphere and no noise, and a CATALOG of the stars. With --count N, -o is a folder of N videos (video_0000.fits ...), each drawn (seeing, stars, screens, noise) from its own seed spawned from --seed; DKINDEX in each header says which.

    Example: dancekit simulate-video --frames 64 --size 256 --seeing 1.2 --stars 300 --seed 1 -o video.fits
    """
    if count is None:
        opt.check_json_with_output(as_json, output)
        check_output(output, overwrite)
    cfg = load_config(config, VideoConfig, overrides)
    shape = parse_size(size)
    if frames < 1:
        raise ParameterError(f"need at least 1 frame, got {frames}", source="--frames")
    if seeing is not None and seeing <= 0:
        raise ParameterError(f"seeing must be > 0 arcsec, got {seeing}", source="--seeing")
    if catalog is not None and cluster is not None:
        raise ParameterError("--catalog and --cluster exclude each other", source="--catalog")
    wcs = _wcs(shape, ra, dec, cfg.camera.pixel_scale)
    catalogue = _read_catalogue(catalog) if catalog else None
    if catalogue is not None:  # refused once here rather than once per video
        try:
            _star_field(shape, np.random.default_rng(0), None, None, catalogue, catalog_offset, wcs, mag_min, mag_max)
        except DancekitError as exc:
            raise exc.with_source(catalog)
    seed = int(np.random.SeedSequence().entropy % 2**31) if seed is None else seed
    plan = VideoPlan(cfg, shape, frames, seeing, r0, parse_stars(stars), cluster, catalogue, catalog_offset, ra, dec,
                     mag_min, mag_max, propagation, device, seed, overwrite)
    return make_products(functools.partial(make_video, plan), output, "video", count, seed, overwrite, scheduler, as_json)


@dataclass(frozen=True)
class VideoPlan:
    """The options of one simulate-video call, shared by every video it makes."""

    cfg: Any  # VideoConfig
    shape: tuple  # (H, W) pixels
    frames: int
    seeing: Optional[float]  # arcsec at 500 nm; None: drawn from the config
    r0: Optional[float]  # m at 500 nm
    stars: Optional[tuple[int, int]]  # (MIN, MAX) drawn per video; None: the default of the field kind
    cluster: Optional[ClusterProfile]
    catalogue: Optional[dict]  # columns of --catalog
    catalog_offset: float
    ra: float  # deg
    dec: float  # deg
    mag_min: float
    mag_max: float
    propagation: Optional[Propagation]
    device: Any  # opt.DeviceChoice, resolved where the video is made
    seed: int  # --seed (DKSEED)
    overwrite: bool


def make_video(plan: VideoPlan, job: tuple) -> dict:
    """Simulate one video, job = (target, its SeedSequence, index in --count or None); its JSON summary."""
    import torch

    from dancekit.device import resolve_device
    from dancekit.io.video import write_video
    from dancekit.sky import atmosphere_draw as atm
    from dancekit.sky import noise
    from dancekit.sky.video import VideoOptics, r0_modulation, simulate_frames, simulate_truth

    target, sequence, index = job
    cfg, shape, frames = plan.cfg, plan.shape, plan.frames
    field_seq, atmosphere_seq, screen_seq, noise_seq, motion_seq = sequence.spawn(5)
    torch_device = resolve_device(plan.device)

    optics = VideoOptics(
        cfg.telescope.aperture, cfg.telescope.obstruction, cfg.optics.wavelength,
        atm.ARCSEC * cfg.camera.pixel_scale, cfg.camera.exposure, 1 / cfg.camera.frame_rate, cfg.atmosphere.substeps,
        (plan.propagation.value if plan.propagation else cfg.optics.propagation), cfg.optics.oversampling,
        cfg.optics.bandwidth, cfg.optics.n_wavelengths,
    )
    profile = [atm.LayerSpec(layer.altitude, layer.cn2_fraction, layer.wind_speed, layer.wind_speed_sigma,
                             layer.wind_direction, layer.L0) for layer in cfg.atmosphere.layers]
    atmosphere = atm.draw_atmosphere(profile, np.random.default_rng(atmosphere_seq), cfg.atmosphere.seeing,
                                     cfg.atmosphere.seeing_sigma, seeing=plan.seeing, r0=plan.r0)
    wcs = _wcs(shape, plan.ra, plan.dec, cfg.camera.pixel_scale)
    field = _star_field(shape, np.random.default_rng(field_seq), plan.stars, plan.cluster, plan.catalogue,
                        plan.catalog_offset, wcs, plan.mag_min, plan.mag_max)
    _check_memory(shape, frames, optics, atmosphere)

    per_frame = noise.mag_to_rate(field.mag, cfg.sky.zero_point) * cfg.camera.exposure  # electrons per frame
    positions = np.column_stack([field.x, field.y])
    motion_rng = np.random.default_rng(motion_seq)
    jitter = atm.smooth_jitter(frames, cfg.atmosphere.ground_jitter / cfg.camera.pixel_scale, 3.0, motion_rng)
    modulation = r0_modulation(frames, cfg.atmosphere.intermittency, 5.0, motion_rng)
    generator = torch.Generator(device=torch_device).manual_seed(int(screen_seq.generate_state(1)[0]))
    log.info("simulating %d frames of %dx%d with %d stars, seeing %.2f\" at 500 nm (%s)", frames, *shape,
             len(field), atmosphere.seeing_at(500e-9), optics.propagation)
    with progress("simulate-video", frames) as advance:
        cube, grid = simulate_frames(positions, per_frame, shape, frames, optics, atmosphere, generator,
                                     jitter=jitter, r0_modulation=modulation, device=torch_device,
                                     on_frame=lambda t: advance(1))
    truth = simulate_truth(positions, per_frame, shape, optics, grid, device=torch_device)

    noise_rng = np.random.default_rng(noise_seq)
    sky = noise.sky_rate_per_pixel(cfg.sky.background, cfg.sky.zero_point, cfg.camera.pixel_scale) * cfg.camera.exposure
    read_noise = (noise.read_noise_map(shape, cfg.camera.read_noise, noise_rng) if cfg.camera.read_noise_map
                  else cfg.camera.read_noise)
    to_adu = cfg.camera.bunit == "adu"
    bits = cfg.camera.bits if cfg.camera.quantize else None
    noisy = np.stack([noise.add_noise(frame + sky, noise_rng, read_noise, cfg.camera.gain, bits, to_adu) for frame in cube])
    if to_adu or bits:
        truth = truth / cfg.camera.gain

    header = _header(cfg, optics, atmosphere, grid, shape, frames, sky, len(field), wcs)
    Provenance.from_argv(config_hash=config_hash(cfg), seed=plan.seed, **product_index(index)).apply(header)
    table = {"x": field.x, "y": field.y, "flux": per_frame / (cfg.camera.gain if to_adu or bits else 1), "mag": field.mag}
    sky_ra, sky_dec = wcs.all_pix2world(field.x, field.y, 0)
    table.update(ra=sky_ra, dec=sky_dec)
    write_video(target, noisy, header, truth, table, plan.overwrite)
    log.info("wrote %s", target)
    return {"command": "simulate-video", "output": target, "frames": frames, "shape": list(shape),
            "stars": len(field), "seed": plan.seed, **({} if index is None else {"index": index}),
            "r0_500": atmosphere.r0, "seeing_500": atmosphere.seeing_at(500e-9), "pupil_grid": grid.n}


def _wcs(shape, ra, dec, pixel_scale):
    from dancekit.sky.star_fields import tan_wcs

    if not (0 <= ra < 360 and -90 <= dec <= 90):
        raise ParameterError(f"field centre ra={ra}, dec={dec} is not on the sky (0 <= ra < 360, -90 <= dec <= 90)", source="--ra/--dec")
    return tan_wcs(shape, ra, dec, pixel_scale)


def parse_stars(text: Optional[str]) -> Optional[tuple[int, int]]:
    """``N`` -> (N, N); ``MIN:MAX`` -> (MIN, MAX), drawn uniformly per video; None stays None."""
    if text is None:
        return None
    try:
        low, _, high = text.partition(":")
        bounds = (int(low), int(high or low))
    except ValueError:
        raise ParameterError(f"'{text}' is not N or MIN:MAX", source="--stars") from None
    if not 1 <= bounds[0] <= bounds[1]:
        raise ParameterError(f"need at least 1 star (and MIN <= MAX), got {text}", source="--stars")
    return bounds


def _star_field(shape, rng, stars, cluster, catalogue, catalog_offset, wcs, mag_min, mag_max):
    from dancekit.sky import star_fields

    if catalogue is not None:
        return star_fields.catalogue_field(catalogue, shape, wcs, rng, catalog_offset)
    if cluster is not None:
        n = 12000 if stars is None else stars[0] if stars[0] == stars[1] else int(rng.integers(stars[0], stars[1] + 1))
        return star_fields.cluster_field(shape, n, rng, profile=cluster.value, mag_max=mag_max, mag_min=mag_min)
    if stars is None or stars[0] != stars[1]:
        return star_fields.homogeneous_field(shape, rng, n_range=stars or (3, 2000), mag_max=mag_max, mag_min=mag_min)
    return star_fields.homogeneous_field(shape, rng, n_stars=stars[0], mag_max=mag_max, mag_min=mag_min)


def _read_catalogue(path: str) -> dict:
    from dancekit.io.fits_in import FitsReader

    with FitsReader(path) as reader:
        table = reader.table()
    if not table.dtype.names:
        raise InputError("catalogue table has no columns", source=path)
    try:
        return {name: np.asarray(table[name], float) for name in table.dtype.names}
    except (TypeError, ValueError):
        raise InputError("catalogue columns must be numeric", source=path) from None


def _check_memory(shape, frames, optics, atmosphere):
    """Estimate the peak memory before any work and refuse what cannot fit."""
    from dancekit.optics.imaging import BATCH_SAMPLES
    from dancekit.sky.video import pupil_grid, screen_pixels, window_size

    grid = pupil_grid(optics, atmosphere.r0_at(optics.wavelength))
    field_radius = math.hypot(*shape) / 2 * optics.pixel_scale
    duration = frames / (1 / optics.frame_interval) + optics.exposure
    cube = 3 * frames * shape[0] * shape[1] * 4  # noise-free, noisy and the written copy, float32
    sizes = screen_pixels(atmosphere, grid, duration, field_radius, window_size(grid, optics))
    # float32 screens are kept (4 B/px); making one briefly needs ~100 B/px (complex FFT, subharmonics)
    screens = 4 * sum(sizes) + SCREEN_BUILD_BYTES * max(sizes)
    # one batch of pupil fields: ~6 complex64 arrays per sample in flight, plus two kept buffers and
    # the float32 power of the batch per wavelength (render_band_frame's per-wavelength plans)
    batch = BATCH_SAMPLES[optics.propagation] * (6 * 8 + optics.n_wavelengths * (2 * 8 + 4))
    estimate = cube + screens + batch + 512 * 2**20
    available = available_memory()
    if available and estimate > available:
        raise ParameterError(
            f"this video needs about {format_bytes(estimate)} of memory ({format_bytes(cube)} of frames, "
            f"{format_bytes(screens)} of phase screens) but {format_bytes(available)} is available; "
            "use fewer frames, a smaller --size, or split the video", source="--size/--frames")


def _header(cfg, optics, atmosphere, grid, shape, frames, sky, n_stars, wcs) -> fits.Header:
    header = wcs.to_header()
    header["BUNIT"] = (cfg.camera.bunit, "pixel unit")
    header["TELESCOP"] = cfg.telescope.name
    header["INSTRUME"] = (cfg.instrument, "instrument of the config (models are matched on it)")
    header["CAMERA"] = f"{cfg.camera.name} ({cfg.camera.sensor})"
    header["FILTER"] = cfg.optics.filter
    header["EXPTIME"] = (cfg.camera.exposure, "[s] exposure of each frame")
    header["FRAMERAT"] = (cfg.camera.frame_rate, "[1/s] frames per second")
    header["FRAMEDT"] = (1 / cfg.camera.frame_rate, "[s] time between frame starts")
    header["NFRAMES"] = frames
    header["PIXSCALE"] = (cfg.camera.pixel_scale, "[arcsec/pixel]")
    header["WAVELEN"] = (optics.wavelength, "[m] central (photon-weighted mean) wavelength")
    wavelengths, weights = optics.band()
    header["BANDWID"] = (optics.bandwidth if len(wavelengths) > 1 else 0.0, "[m] full width of the band (0: monochromatic)")
    header["NWAVE"] = (len(wavelengths), "wavelengths sampling the band (flat photon spectrum)")
    for i, (wavelength, weight) in enumerate(zip(wavelengths, weights), 1):
        header[f"WAVE{i}"] = (wavelength, f"[m] simulated wavelength {i}")
        header[f"WWGT{i}"] = (weight, f"photon fraction at WAVE{i}")
    header["APERTURE"] = (optics.aperture, "[m] primary diameter")
    header["OBSTRUCT"] = (optics.obstruction, "linear central obstruction")
    header["GAIN"] = (cfg.camera.gain, "[e-/ADU]")
    header["RDNOISE"] = (cfg.camera.read_noise, "[e-] read noise rms")
    header["SKYLEVEL"] = (sky, "[e-/pixel/frame] sky background added")
    header["PROPMODE"] = (optics.propagation, "fresnel (split-step) or geometric")
    header["NSUBSTEP"] = (optics.substeps, "turbulence sub-steps per exposure")
    header["PUPILN"] = (grid.n, "pupil grid samples per side")
    header["PUPILDX"] = (grid.sampling, "[m] pupil grid sampling (at the shortest WAVEi)")
    header["PSFOVS"] = (grid.oversampling, "PSF samples per pixel before binning")
    header["R0_500"] = (atmosphere.r0, "[m] total r0 at 500 nm at zenith")
    header["SEE_500"] = (atmosphere.seeing_at(500e-9), "[arcsec] seeing at 500 nm (0.98 lambda/r0)")
    header["R0_OBS"] = (atmosphere.r0_at(optics.wavelength), "[m] total r0 at WAVELEN")
    header["SEE_OBS"] = (atmosphere.seeing_at(optics.wavelength), "[arcsec] seeing at WAVELEN")
    header["NLAYERS"] = len(atmosphere.layers)
    for i, layer in enumerate(atmosphere.layers, 1):
        header[f"L{i}_ALT"] = (layer.altitude, f"[m] layer {i} altitude")
        header[f"L{i}_CN2F"] = (layer.cn2_fraction, f"layer {i} Cn2 fraction")
        header[f"L{i}_R0"] = (layer.r0, f"[m] layer {i} r0 at 500 nm")
        header[f"L{i}_VX"] = (layer.wind[0], f"[m/s] layer {i} wind along +x")
        header[f"L{i}_VY"] = (layer.wind[1], f"[m/s] layer {i} wind along +y")
        header[f"L{i}_L0"] = (layer.L0, f"[m] layer {i} outer scale")
    header["JITTER"] = (cfg.atmosphere.ground_jitter, "[arcsec] rms ground-layer field motion")
    header["INTERMIT"] = (cfg.atmosphere.intermittency, "relative rms of per-frame r0")
    header["NSTARS"] = n_stars
    header["XYORIGIN"] = (0, "CATALOG x, y are 0-based pixel coordinates")
    return header


def register(app: typer.Typer) -> None:
    app.command("simulate-video")(simulate_video)
