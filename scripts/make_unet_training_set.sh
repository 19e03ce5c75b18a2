#!/usr/bin/env bash
# Training videos for the bundled C2PU U-Net (dancekit/weights/c2pu_default.pt), as `make weights` runs them.
# Small on purpose: 64x64 fields, 48 frames (9 s at 5.25 /s), 2 turbulence sub-steps per exposure,
# geometric propagation (scintillation is weak at D = 1 m), seeing drawn per video from the C2PU config.
# Usage: scripts/make_unet_training_set.sh OUTDIR N_VIDEOS [FIRST_SEED]
set -euo pipefail
out=${1:?output folder}; n=${2:?number of videos}; first=${3:-1000}
dancekit=${DANCEKIT:-dancekit}
mkdir -p "$out"
for ((i = 0; i < n; i++)); do
  seed=$((first + i))
  target="$out/train_$seed.fits"
  [ -e "$target" ] && continue
  # stars: N ~ U[3, 500] on 64x64 matches the paper's U[3, 2000] on 256x256 in density at the bright end
  stars=$(( 3 + (seed * 7919) % 498 ))
  $dancekit simulate-video --frames 48 --size 64 --stars "$stars" --propagation geometric \
    --set atmosphere.substeps=2 --seed "$seed" -o "$target" -q
done
