"""Strip the resume state (latest weights, Adam moments, RNG) from a train-unet checkpoint for shipping;
everything else, the training domain included, is kept (calibrate-unet then refreshes the domain).

Usage: python scripts/deployable_checkpoint.py TRAINING.pt DEPLOYABLE.pt
"""

import sys

from dancekit.io.checkpoint import read_checkpoint, without_training_state, write_checkpoint

if __name__ == "__main__":
    source, target = sys.argv[1:3]
    write_checkpoint(without_training_state(read_checkpoint(source)), target, overwrite=True)
