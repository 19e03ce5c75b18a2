"""Measure a U-Net's flux calibration, E[true e- | output], on held-out videos and store it in the model.

See dancekit/unet/flux_calibration.py for why: a model trained with MSE on Anscombe-transformed
targets loses flux through the algebraic inverse wherever it is uncertain (faint stars most).
The videos must not be the model's training videos (simulate fresh ones with other seeds).

Usage: python scripts/calibrate_unet_flux.py MODEL.pt VIDEO_OR_FOLDER... -o CALIBRATED.pt [--stride 2]
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import torch

from dancekit.io.checkpoint import read_checkpoint, write_checkpoint
from dancekit.io.training_videos import find_videos, open_training_video
from dancekit.unet.checkpoint import model_from_checkpoint
from dancekit.unet.flux_calibration import fit_flux_calibration, predictions_on_videos
from dancekit.unet.inference import model_context
from dancekit.unet.preprocess import network_output_to_electrons


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("videos", nargs="+")
    parser.add_argument("-o", "--output", required=True)
    parser.add_argument("--stride", type=int, default=2, help="frames between calibration windows")
    args = parser.parse_args()
    checkpoint = read_checkpoint(args.model)
    model = model_from_checkpoint(checkpoint)
    context = int(checkpoint.get("context") or model_context(model))
    sources = [open_training_video(path, gain=1.0) for path in find_videos(args.videos)]
    predicted, truth = predictions_on_videos(
        model, ((s.read_frames(0, s.shape[0]), s.read_truth()) for s in sources), context, args.stride)
    calibration = fit_flux_calibration(predicted, truth)
    output = torch.from_numpy(predicted)[:, None]
    before = network_output_to_electrons(output, checkpoint.get("inverse", "unbiased")).sum().item()
    after = network_output_to_electrons(output, calibration=calibration).sum().item()
    bright = truth > 5
    before_bright = network_output_to_electrons(output, checkpoint.get("inverse", "unbiased")).numpy()[bright].sum()
    after_bright = network_output_to_electrons(output, calibration=calibration).numpy()[bright].sum()
    checkpoint["flux_calibration"] = calibration.to_dict()
    checkpoint["flux_calibration"]["videos"] = [os.path.basename(str(s.name)) for s in sources]
    write_checkpoint(checkpoint, args.output, overwrite=True)
    total = float(np.sum(truth))
    print(f"{len(sources)} videos, {predicted.shape[0]} windows, {calibration.pixels} pixels, {len(calibration.y)} knots")
    print(f"output flux / true flux: {checkpoint.get('inverse', 'unbiased')} inverse {before / total:.3f}, "
          f"calibrated {after / total:.3f}; on pixels of truth > 5 e-: {before_bright / truth[bright].sum():.3f}, "
          f"{after_bright / truth[bright].sum():.3f}")


if __name__ == "__main__":
    main()
