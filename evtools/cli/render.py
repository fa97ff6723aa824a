"""``evtools render CACHE -o out.png``: look at what a conversion made."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from evtools.cli.console import stdout
from evtools.cli.options import OptionError
from evtools.render import MAX_FPS, MIN_FPS, PICTURE_SUFFIXES, VIDEO_SUFFIXES, render as render_cache


def render(
    cache: Annotated[str, typer.Argument(help="A cache made by evtools convert (a folder, or a URL).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="out.png for one window; out.mp4 or out.gif for a range.")],
    index: Annotated[int, typer.Option(help="The window to draw (a picture), or the first of a video.")] = 0,
    count: Annotated[int, typer.Option(help="Windows in a video.")] = 100,
    representation: Annotated[str | None, typer.Option("--repr", help="Which representation (default: the first).")] = None,
    fps: Annotated[float, typer.Option(help="Video frames per second.")] = 10.0,
) -> None:
    """Draw a window's representation, APS frame and labels side by side; or a video of windows."""
    if index < 0 or count < 1:
        raise OptionError("--index must be >= 0 and --count >= 1")
    if not MIN_FPS <= fps <= MAX_FPS:
        raise OptionError(f"--fps: give {MIN_FPS:g} to {MAX_FPS:g} frames per second, not {fps}")
    if output.suffix.lower() not in PICTURE_SUFFIXES + VIDEO_SUFFIXES:
        raise OptionError(f"--output: '{output.suffix or output.name}' is no picture or video type evtools writes "
                          f"(known: {', '.join(PICTURE_SUFFIXES + VIDEO_SUFFIXES)})")
    from evtools.cache import Cache

    is_video = output.suffix.lower() in VIDEO_SUFFIXES
    stop = min(index + count, len(Cache(cache))) if is_video else index + 1
    written = render_cache(cache, output, range(index, max(stop, index + 1)), representation, fps)
    stdout.print(f"wrote {written}")
