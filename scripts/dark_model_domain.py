"""Record the training domain in a dark model file made before train-dark recorded it.

predict-dark checks every frame against a model's ``domain`` (bias and dark levels, temperature,
exposure of its training frames; ``dancekit.dark.domain``). train-dark writes it; for an older
model file, remake the training frames (same command, same seed) and measure it here, from the
frames whose names the model lists as its training data, exactly as train-dark would.

Usage: python scripts/dark_model_domain.py MODEL.pt FRAMES_FOLDER OUT.pt
(the bundled model: see dancekit/weights/README.md)
"""

import sys
from pathlib import Path

from dancekit.dark.cameras import layout_from_mapping
from dancekit.io.checkpoint import write_checkpoint
from dancekit.io.dark_files import find_raw_frames, measure_domain, read_dark_model

if __name__ == "__main__":
    model_path, folder, target = sys.argv[1:4]
    checkpoint = read_dark_model(model_path)
    by_name = {Path(p).name: p for p in find_raw_frames([folder])}
    names = checkpoint["training"]["data"]["train"]
    missing = [n for n in names if n not in by_name]
    if missing:
        sys.exit(f"{folder} lacks {len(missing)} of the model's training frames, e.g. {missing[0]}")
    layout = layout_from_mapping(checkpoint["layout"])
    checkpoint["domain"] = measure_domain([by_name[n] for n in names], layout, checkpoint["conditioning"].get("bias_degree", 3))
    write_checkpoint(checkpoint, target, overwrite=True)
    print({k: v for k, v in checkpoint["domain"].items()})
