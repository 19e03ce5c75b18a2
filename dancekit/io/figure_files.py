"""PNG figures written like every dancekit product: atomically, never over a file without --overwrite.

The PNG carries, as text chunks, its title, the command line that made it and the numbers it
shows (``dancekit-data``: :func:`dancekit.plots.canvas.plotted_data` as JSON), so the data
behind a figure can be read back from the figure itself.
"""

from __future__ import annotations

import json
import shlex
import sys
from typing import Any

import numpy as np

from dancekit import __version__
from dancekit.errors import InputError
from dancekit.io.fits_out import STDOUT, atomic_path

DATA_KEY = "dancekit-data"


def write_png(figure: Any, path: str, overwrite: bool = False, dpi: int = 90) -> None:
    """Render ``figure`` (Agg) into a PNG at ``path``, through a temporary file renamed when complete."""
    from dancekit.plots.canvas import plotted_data

    if path == STDOUT:
        raise InputError("a figure goes to a PNG file, not to standard output", source=path)
    title = figure.get_suptitle() if hasattr(figure, "get_suptitle") else ""
    metadata = {
        "Title": title.replace("\n", " — "),
        "Software": f"dancekit {__version__}",
        "Source": " ".join(shlex.quote(a) for a in sys.argv),
        DATA_KEY: json.dumps(plotted_data(figure), ensure_ascii=True, separators=(",", ":")),
    }
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    figure.set_dpi(dpi)
    figure.canvas.draw()  # Agg (dancekit.plots.canvas.new_figure)
    # opaque and 256 adaptive colours: image panels of noisy sky stay under ~150 kB (RGB: 350 kB)
    image = Image.fromarray(np.asarray(figure.canvas.buffer_rgba())).convert("RGB")
    image = image.convert("P", palette=Image.Palette.ADAPTIVE, colors=256)
    info = PngInfo()
    for key, value in metadata.items():
        info.add_text(key, value)  # iTXt where the text is not Latin-1
    with atomic_path(path, overwrite) as tmp:
        image.save(tmp, format="png", optimize=True, pnginfo=info)


def read_plotted_data(path: str) -> dict:
    """The ``dancekit-data`` of a PNG written by :func:`write_png` (``{}`` if it has none)."""
    from PIL import Image

    with Image.open(path) as image:
        text = getattr(image, "text", {}) or {}
        return json.loads(text[DATA_KEY]) if DATA_KEY in text else {}
