"""``dancekit average``: the plain temporal mean of a video (the paper's average-stack baseline)."""

# No "from __future__ import annotations" in command modules: typer reads the live Annotated types.


from typing import Annotated, Optional

import typer
from astropy.io import fits

from dancekit.commands import options as opt
from dancekit.commands.execution import map_inputs
from dancekit.commands.runtime import cli_command, log, progress
from dancekit.errors import ParameterError
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
    lucky: Annotated[Optional[float], typer.Option("--lucky", help="Lucky imaging instead of the plain mean: shift-and-add of this fraction of the frames (e.g. 0.1), those where the brightest star's peak is highest, registered on that peak (the frames are read into memory).")] = None,
    overwrite: opt.Overwrite = False,
    as_json: opt.Json = False,
    scheduler: opt.Scheduler = None,
):
    """Average the frames of a video cube into one image.

    The mean ignores NaN pixels (masked frames); the cube is read in chunks, so videos larger
    than memory work. Several single-frame images are the frames of one video, averaged into one
    image, as infer-tiles reads them. Observation keywords and the WCS of the (first) input are kept.

    With --lucky F, the classical alternative to the U-Net: the fraction F of frames in which the
    brightest star is sharpest, each shifted by whole pixels to put that star's peak on one pixel,
    then averaged (LUCKYFRC, LUCKYREF and NCOMBINE say what was kept).

    Example: dancekit average video.fits --frames 0:160 -o average.fits
    """
    opt.check_json_with_output(as_json, output)
    if lucky is not None and not 0 < lucky <= 1:
        raise ParameterError(f"the lucky fraction must be in (0, 1], got {lucky}", source="--lucky")
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
            if lucky is None:
                image, used, empty = _mean(video, start, stop, source.name)
            else:
                image, used, empty, cards = _lucky(video, start, stop, source.name, lucky)
        if empty:
            log.warning("%s: %d all-NaN frames were left out of the mean", name, empty)
        out = fits.PrimaryHDU(image)
        carry_header(header, out.header)
        out.header["NCOMBINE"] = (used, "frames averaged")
        out.header["FRAMES"] = (f"{start}:{stop}", "input frames averaged, 0-based, stop excluded")
        if lucky is not None:
            out.header.update(cards)
        if source.single_frames:
            out.header.add_history(f"frames: {len(source.paths)} single-frame files, first {source.paths[0]}"[:72])
        Provenance.from_argv().apply(out.header)
        write_hdus(fits.HDUList([out]), target, overwrite)
        log.info("%s: averaged %d of %d frames -> %s", name, used, stop - start, target)
        return {"input": name, "output": target, "frames": stop - start, "averaged": used, "empty_frames": empty,
                "files": len(source.paths)}

    ran = map_inputs([s.name for s in sources], one, scheduler, output=output)
    summaries, code = ran.results, ran.code
    if as_json:
        opt.print_json({"command": "average", "results": summaries, "failed": len(sources) - len(summaries)})
    return code


def _mean(video, start: int, stop: int, name: str) -> tuple:
    """The NaN-ignoring mean of frames start:stop read in chunks: (image, frames used, all-NaN frames)."""
    stack = RunningMean(video.shape)
    step = max(1, CHUNK_BYTES // (4 * video.shape[0] * video.shape[1]))
    with progress(f"average {name}", stop - start) as advance:
        for first in range(start, stop, step):
            last = min(stop, first + step)
            stack.add(video.read(first, last))
            advance(last - first)
    return stack.result(), stack.frames - stack.empty_frames, stack.empty_frames


def _lucky(video, start: int, stop: int, name: str, fraction: float) -> tuple:
    """Shift-and-add of the sharpest frames (sky.lucky): (image, frames used, 0, header cards)."""
    from dancekit.sky.lucky import lucky_stack

    result = lucky_stack(video.read(start, stop), fraction)
    row, column = result.reference
    log.info("%s: lucky imaging kept %d of %d frames, registered on the star at x = %d, y = %d", name,
             len(result.selected), stop - start, column, row)
    cards = {"LUCKYFRC": (fraction, "lucky imaging: fraction of frames kept"),
             "LUCKYREF": (f"{column},{row}", "x,y (0-based) of the registration star")}
    return result.image, len(result.selected), 0, cards


def register(app: typer.Typer) -> None:
    app.command("average")(average)
