"""``dancekit average``: the plain temporal mean of a video (the paper's average-stack baseline)."""

# No "from __future__ import annotations" in command modules: typer reads the live Annotated types.


from typing import Annotated, Optional

import typer
from astropy.io import fits

from dancekit.commands import options as opt
from dancekit.commands.execution import map_inputs
from dancekit.commands.runtime import cli_command, log, progress
from dancekit.io.fits_out import check_output, output_for, write_hdus
from dancekit.io.provenance import Provenance, carry_header
from dancekit.io.video import VideoInput
from dancekit.sky.stack import RunningMean

CHUNK_BYTES = 256 * 2**20  # frames read at a time: bounded memory for cubes larger than RAM


@cli_command
def average(
    inputs: opt.VideoInputs,
    output: opt.Output,
    frames: Annotated[Optional[str], typer.Option("--frames", help="Frames to average, START:STOP (0-based, stop excluded).")] = None,
    ext: Annotated[Optional[str], typer.Option("--ext", help="Image extension holding the cube (name or index).")] = None,
    overwrite: opt.Overwrite = False,
    as_json: opt.Json = False,
    scheduler: opt.Scheduler = None,
):
    """Average the frames of a video cube into one image.

    The mean ignores NaN pixels (masked frames); the cube is read in chunks, so videos larger
    than memory work. Several single-frame images are the frames of one video, averaged into one
    image, as infer-tiles reads them. Observation keywords and the WCS of the (first) input are kept.

    Example: dancekit average video.fits --frames 0:160 -o average.fits
    """
    opt.check_json_with_output(as_json, output)
    sources = VideoInput.plan(inputs, ext)
    if len(sources) > 1:
        output_for(sources[0].name, output, len(sources))  # -o must be a folder: said once, not once per input
    by_name = {s.name: s for s in sources}

    def one(name: str) -> dict:
        source = by_name[name]
        target = output_for(name, output, len(sources))
        check_output(target, overwrite)
        with source.open(single_image=True) as video:
            header = video.header
            start, stop = opt.parse_range(frames, video.n_frames)
            stack = RunningMean(video.shape)
            step = max(1, CHUNK_BYTES // (4 * video.shape[0] * video.shape[1]))
            with progress(f"average {source.name}", stop - start) as advance:
                for first in range(start, stop, step):
                    last = min(stop, first + step)
                    stack.add(video.read(first, last))
                    advance(last - first)
        image = stack.result()
        if stack.empty_frames:
            log.warning("%s: %d all-NaN frames were left out of the mean", name, stack.empty_frames)
        out = fits.PrimaryHDU(image)
        carry_header(header, out.header)
        out.header["NCOMBINE"] = (stack.frames - stack.empty_frames, "frames averaged")
        out.header["FRAMES"] = (f"{start}:{stop}", "input frames averaged, 0-based, stop excluded")
        if source.single_frames:
            out.header.add_history(f"frames: {len(source.paths)} single-frame files, first {source.paths[0]}"[:72])
        Provenance.from_argv().apply(out.header)
        write_hdus(fits.HDUList([out]), target, overwrite)
        log.info("%s: averaged %d frames -> %s", name, stack.frames, target)
        return {"input": name, "output": target, "frames": stack.frames, "empty_frames": stack.empty_frames,
                "files": len(source.paths)}

    ran = map_inputs([s.name for s in sources], one, scheduler, output=output)
    summaries, code = ran.results, ran.code
    if as_json:
        opt.print_json({"command": "average", "results": summaries, "failed": len(sources) - len(summaries)})
    return code


def register(app: typer.Typer) -> None:
    app.command("average")(average)
