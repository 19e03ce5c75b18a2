"""The mix of scenes the bundled U-Net is trained on: what users point it at, not one field type.

DanceCam (Bialek et al. 2024 §3.1) trains on random fields of U[3, 2000] stars per 256² to
magnitude 21 with the seeing drawn over the site's range. A model trained only on those
generalises poorly to globular clusters, whose cores are 3-10x denser than the densest random
field. ``draw_training_scene`` draws one scene from a mix of

* random fields at the paper's densities (N ~ U[3, 2000] per 256², scaled to the frame area);
* dense random fields (2000-8000 per 256², log-uniform): crowding everywhere in the tile;
* King and Plummer clusters of 250-2500 stars per 144² (log-uniform), core radius 25-120 px
  (M92 at 0.235"/px: 70 px), centred anywhere within 0.6 of the frame size of its centre, so tiles
  see cores, flanks and outskirts; central densities 0.02-0.5 stars/px² (M92-like 256² with 2500
  stars: 0.10);

with seeing ~ U[0.7, 1.6]" at 500 nm, 2 or 4 turbulence sub-steps per exposure, geometric or
split-step Fresnel propagation (probabilities below) and a sky of 18.5-21.5 mag/arcsec² (dark
to moonlit; the C2PU config's 20.5 is one value). Every draw comes from the generator passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dancekit.sky.star_fields import StarField, cluster_field, homogeneous_field

PAPER_AREA = 256 * 256                      # px², the area the paper's star counts refer to
KINDS = ("random", "dense", "king", "plummer")
KIND_WEIGHTS = (0.35, 0.15, 0.35, 0.15)
SEEING_RANGE = (0.7, 1.6)                   # arcsec at 500 nm (issue 13: the range users observe in)
CLUSTER_STARS_PER_144 = (250, 2500)         # stars in a 144² frame, log-uniform
CORE_RADIUS_RANGE = (25.0, 120.0)           # px
CENTRE_SPREAD = 0.6                         # cluster centre within +-0.6 frame sizes of the middle
P_FOUR_SUBSTEPS = 0.35                      # else 2 sub-steps per exposure
P_FRESNEL = 0.15                            # else geometric (scintillation is weak at D = 1 m)
SKY_RANGE = (18.5, 21.5)                    # mag/arcsec², dark to bright (moon) r-band sky


@dataclass(frozen=True)
class TrainingScene:
    """One training video's scene: its stars and the atmosphere/optics choices drawn with them."""

    kind: str
    field: StarField
    seeing: float          # arcsec at 500 nm, zenith
    substeps: int          # turbulence sub-steps integrated within one exposure
    propagation: str       # "geometric" or "fresnel"
    sky: float             # sky brightness, mag/arcsec²


def draw_training_scene(shape: tuple[int, int], rng: np.random.Generator,
                        mag_min: float = 12.0, mag_max: float = 21.0) -> TrainingScene:
    """One scene of the training mix for a frame of ``shape`` (rows, columns) pixels."""
    height, width = shape
    area = height * width
    kind = str(rng.choice(KINDS, p=KIND_WEIGHTS))
    if kind == "random":
        top = max(3, round(2000 * area / PAPER_AREA))
        field = homogeneous_field(shape, rng, n_range=(3, top), mag_max=mag_max, mag_min=mag_min)
    elif kind == "dense":
        n = round(_log_uniform(rng, 2000, 8000) * area / PAPER_AREA)
        field = homogeneous_field(shape, rng, n_stars=n, mag_max=mag_max, mag_min=mag_min)
    else:
        n = round(_log_uniform(rng, *CLUSTER_STARS_PER_144) * area / 144**2)
        core = float(rng.uniform(*CORE_RADIUS_RANGE))
        centre = ((width - 1) / 2 + rng.uniform(-CENTRE_SPREAD, CENTRE_SPREAD) * width,
                  (height - 1) / 2 + rng.uniform(-CENTRE_SPREAD, CENTRE_SPREAD) * height)
        field = cluster_field(shape, n, rng, profile=kind, core_radius=core, centre=centre,
                              mag_max=mag_max, mag_min=mag_min)
    seeing = float(rng.uniform(*SEEING_RANGE))
    substeps = 4 if rng.uniform() < P_FOUR_SUBSTEPS else 2
    propagation = "fresnel" if rng.uniform() < P_FRESNEL else "geometric"
    sky = float(rng.uniform(*SKY_RANGE))
    return TrainingScene(kind, field, seeing, substeps, propagation, sky)


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))
