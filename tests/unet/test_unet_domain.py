"""A model's training domain: measured levels, the stored form, and the comparison with a video."""

import io

import numpy as np
import pytest
import torch

from dancekit.errors import InputError
from dancekit.unet.data import VideoSource
from dancekit.unet.domain import (ARCSEC, TrainingDomain, VideoFacts, compare, domain_from_videos, domain_of_sources,
                                  flux_ratio_warning, measure_levels)

C2PU = VideoFacts("C2PU-Omicron", 0.235 * ARCSEC, 0.19)


def poisson_frames(rng, sky=50.0, shape=(8, 64, 64), stars=((20, 20, 5000.0), (40, 45, 2000.0)), read_noise=0.0):
    """Frames [e-]: a flat sky and Gaussian stars (sigma 1.5 px) with Poisson and read noise; and the star flux per frame."""
    y, x = np.mgrid[:shape[1], :shape[2]]
    image = np.full(shape[1:], sky)
    for y0, x0, flux in stars:
        image += flux * np.exp(-((x - x0) ** 2 + (y - y0) ** 2) / (2 * 1.5**2)) / (2 * np.pi * 1.5**2)
    frames = rng.poisson(image, size=shape) + rng.normal(0.0, read_noise, shape)
    return frames.astype(np.float32), sum(s[2] for s in stars)


def test_levels_recover_the_sky_noise_and_source_flux_of_poisson_frames():
    rng = np.random.default_rng(0)
    frames, star_flux = poisson_frames(rng, sky=50.0, read_noise=2.0)  # continuous: MAD of integers is coarse
    levels = measure_levels(frames)
    assert levels.sky == pytest.approx(50.0, abs=0.3)
    assert levels.noise == pytest.approx(np.sqrt(50.0 + 2.0**2), rel=0.03)
    assert levels.flux == pytest.approx(star_flux / 64**2, rel=0.05)
    peak_expected = 5000.0 / (2 * np.pi * 1.5**2)  # the brighter star's central pixel (~354 e-)
    assert levels.peak == pytest.approx(peak_expected, rel=0.1)
    assert levels.saturated == 0
    assert measure_levels(frames, saturation=300.0).saturated == int((frames >= 300).sum()) > 0
    frames[2] = np.nan  # a masked frame is ignored, an all-NaN video has no levels
    assert measure_levels(frames).sky == pytest.approx(50.0, abs=0.3)
    assert measure_levels(np.full((2, 4, 4), np.nan)) is None


def test_domain_spans_its_videos_and_survives_a_weights_only_checkpoint():
    rng = np.random.default_rng(1)
    sources, facts = [], []
    for i, sky in enumerate((20.0, 50.0, 80.0)):
        frames, _ = poisson_frames(rng, sky=sky, read_noise=2.0)
        sources.append(VideoSource.from_arrays(f"v{i}", frames, frames[0]))
        facts.append(VideoFacts("C2PU-Omicron", (0.235 + 0.001 * i) * ARCSEC, 0.19 if i else 0.2))
    domain = domain_of_sources(sources, facts, n_frames=4, measured_by="test")
    assert domain.instruments == ("C2PU-Omicron",) and domain.videos == 3
    assert domain.pixel_scale[0] / ARCSEC == pytest.approx(0.235) and domain.pixel_scale[1] / ARCSEC == pytest.approx(0.237)
    assert domain.exposure == (0.19, 0.2)
    assert domain.levels["sky"][0] == pytest.approx(20.0, abs=0.3) and domain.levels["sky"][-1] == pytest.approx(80.0, abs=0.5)
    assert domain.levels["noise"][2] == pytest.approx(np.sqrt(54.0), rel=0.05)  # the median video
    buffer = io.BytesIO()
    torch.save({"domain": domain.to_dict()}, buffer)
    buffer.seek(0)
    stored = torch.load(buffer, weights_only=True)["domain"]
    assert stored["pixel_scale_arcsec"] == pytest.approx([0.235, 0.237])
    again = TrainingDomain.from_dict(stored)
    assert again.pixel_scale == pytest.approx(domain.pixel_scale)
    assert all(again.levels[k] == pytest.approx(v) for k, v in domain.levels.items())
    with pytest.raises(InputError, match="domain is malformed"):
        TrainingDomain.from_dict({**stored, "pixel_scale_arcsec": [0.3, 0.2]})
    # no video names an instrument: the config's is used
    assert domain_from_videos([(VideoFacts(None, None, None), None)], instrument="X").instruments == ("X",)


def c2pu_domain():
    return TrainingDomain(instruments=("C2PU-Omicron",), pixel_scale=(0.235 * ARCSEC, 0.235 * ARCSEC),
                          exposure=(0.19, 0.19), levels={"noise": (1.2, 1.2, 1.3, 2.0, 2.2), "flux": (0.1, 0.2, 1, 2, 2.6),
                                                         "peak": (10, 20, 100, 400, 560)}, videos=16)


@pytest.mark.parametrize("facts, refused, message", [
    (VideoFacts("C2PU-Omicron", 0.25 * ARCSEC, 0.19), False, None),            # 6 % off: inside
    (VideoFacts("C2PU-Omicron", None, 0.19), True, 'no pixel scale .* trained at 0.235"/px'),
    (VideoFacts("C2PU-Omicron", 0.065 * ARCSEC, 0.19), True, 'pixel scale 0.065"/px differs by more than 10% from the 0.235"/px'),
    (VideoFacts("C2PU-Omicron", 0.262 * ARCSEC, 0.19), True, "0.262"),          # 11.5 % off
    (VideoFacts("LAMOST-guide", 0.235 * ARCSEC, 0.19), True, "trained for instrument 'C2PU-Omicron' but the video's INSTRUME is 'LAMOST-guide'"),
    (VideoFacts(None, 0.235 * ARCSEC, 0.19), False, "no INSTRUME"),
    (VideoFacts("c2pu-omicron ", 0.235 * ARCSEC, 0.015), False, "frames of 0.015 s but the model was trained on 0.19 s frames"),
    (VideoFacts("C2PU-Omicron", 0.235 * ARCSEC, None), False, "no EXPTIME"),
])
def test_header_mismatches_are_refused_or_warned(facts, refused, message):
    found = compare(c2pu_domain(), facts, None)
    if message is None:
        assert found == []
        return
    assert len(found) == 1 and found[0].refuse is refused
    assert __import__("re").search(message, found[0].message), found[0].message


def test_levels_far_outside_the_training_range_are_warnings():
    domain = c2pu_domain()
    inside = measure_levels(poisson_frames(np.random.default_rng(2), sky=0.5, stars=((30, 30, 1500.0),), read_noise=1.0)[0])
    assert compare(domain, C2PU, inside) == [], inside
    rng = np.random.default_rng(3)
    noisy = measure_levels(rng.normal(300.0, 8.0, (4, 32, 32)).astype(np.float32), saturation=310.0)
    found = {m.what: m for m in compare(domain, C2PU, noisy)}
    assert set(found) == {"noise", "flux", "saturation"} and not any(m.refuse for m in found.values())
    assert "noise rms 8" in found["noise"].message and "training range 1.2-2.2 e-" in found["noise"].message
    # a model without any domain checks nothing
    assert compare(TrainingDomain(), VideoFacts(None, None, None), noisy) == []


def test_flux_ratio_warning_outside_its_range():
    assert flux_ratio_warning(1.0) is None and flux_ratio_warning(0.8) is None and flux_ratio_warning(1.25) is None
    assert "0.4% of the average stack" in flux_ratio_warning(0.004)
    assert "undefined" in flux_ratio_warning(None)
