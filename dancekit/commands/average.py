"""``dancekit average``: the plain temporal mean of a video (the paper's average-stack baseline)."""

# No "from __future__ import annotations" in command modules: typer reads the live Annotated types.


from typing import Annotated, Optional

import typer
from astropy.io import fits

from dancekit.commands import options as opt
from dancekit.commands.execution import map_inputs
from dancekit.commands.runtime import cli_command, log, progress
from dancekit.io.fits_in import FitsReader
from dancekit.io.fits_out import check_output, output_for, write_hdus
from dancekit.io.provenance import Provenance, carry_header
from dancekit.sky.stack import RunningMean

CHUNK_BYTES = 256 * 2**20  # frames read at a time: bounded memory for cubes larger than RAM


@cli_command
def average(
    inputs: opt.Inputs,
    output: opt.Output,
    frames: Annotated[Optional[str], typer.Option("--frames", help="Frames to average, START:STOP (0-based, stop excluded).")] = None,
    ext: Annotated[Optional[str], typer.Option("--ext", help="Image extension holding the cube (name or index).")] = None,
    overwrite: opt.Overwrite = False,
    as_json: opt.Json = False,
    scheduler: opt.Scheduler = None,
):
    """Average the frames of a video cube into one image.

    The mean ignores NaN pixels (masked frames); the cube is read in chunks, so videos larger
    than memory work. Observation keywords and the WCS of the input are kept.

    Example: dancekit average video.fits --frames 0:160 -o average.fits
    """
    opt.check_json_with_output(as_json, output)

    def one(path: str) -> dict:
        target = output_for(path, output, len(inputs))
        check_output(target, overwrite)
        with FitsReader(path) as reader:
            info = reader.image_info(ext, (2, 3))
            header = reader.header(info.index)
            n_frames = info.shape[0] if len(info.shape) == 3 else 1
            start, stop = opt.parse_range(frames, n_frames)
            stack = RunningMean(info.shape[-2:])
            step = max(1, CHUNK_BYTES // (4 * info.shape[-1] * info.shape[-2]))
            with progress(f"average {reader.name}", stop - start) as advance:
                for first in range(start, stop, step):
                    last = min(stop, first + step)
                    stack.add(reader.frames(first, last, info.index) if len(info.shape) == 3 else reader.image(info.index))
                    advance(last - first)
        image = stack.result()
        if stack.empty_frames:
            log.warning("%s: %d all-NaN frames were left out of the mean", path, stack.empty_frames)
        out = fits.PrimaryHDU(image)
        carry_header(header, out.header)
        out.header["NCOMBINE"] = (stack.frames - stack.empty_frames, "frames averaged")
        out.header["FRAMES"] = (f"{start}:{stop}", "input frames averaged, 0-based, stop excluded")
        Provenance.from_argv().apply(out.header)
        write_hdus(fits.HDUList([out]), target, overwrite)
        log.info("%s: averaged %d frames -> %s", path, stack.frames, target)
        return {"input": path, "output": target, "frames": stack.frames, "empty_frames": stack.empty_frames}

    ran = map_inputs(inputs, one, scheduler, output=output)
    summaries, code = ran.results, ran.code
    if as_json:
        opt.print_json({"command": "average", "results": summaries, "failed": len(inputs) - len(summaries)})
    return code


def register(app: typer.Typer) -> None:
    app.command("average")(average)
