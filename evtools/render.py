"""Pictures and videos of cache windows: the representation, the APS frame, the pseudo-labels and
the ground truth side by side, over a legend.

A representation is drawn as its positive activity in red and its negative activity in blue on
black (``Representation.activity``: summed bins, counts, or the time surface), each polarity
scaled by the 99th percentile of its nonzero values, square-root compressed, and lifted so that
any pixel with activity is at least 80 of 255 bright: event data is mostly single events per
pixel, which a linear scale to the maximum leaves black. Labels use the 6 DDD17 classes' colours
(Cityscapes'), ignored pixels black. Videos are H.264 (.mp4, through PyAV) or GIF.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from evtools.cache import Cache, CacheArray
from evtools.errors import EvtoolsError, require
from evtools.io.images import write_picture
from evtools.labels import CLASS_COLOURS, CLASS_NAMES, IGNORE_COLOUR
from evtools.representations import EvImage
from evtools.tensors import WindowTensors

GAP = 4
TITLE_HEIGHT = 18
LEGEND_ROW = 20
VIDEO_SUFFIXES = (".mp4", ".gif")
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")  # those OpenCV writes


VISIBLE = 80  # the least brightness of a pixel with activity


def events_picture(positive: np.ndarray, negative: np.ndarray) -> np.ndarray:
    picture = np.zeros((*positive.shape, 3), np.uint8)
    for channel, values in ((2, positive), (0, negative)):  # BGR: red is channel 2
        nonzero = values > 0
        if nonzero.any():
            scale = np.percentile(values[nonzero], 99) or values[nonzero].max()
            level = np.sqrt(np.clip(values[nonzero] / scale, 0, 1))
            picture[..., channel][nonzero] = np.rint(VISIBLE + (255 - VISIBLE) * level).astype(np.uint8)
    return picture


def labels_picture(labels: np.ndarray) -> np.ndarray:
    picture = np.empty((*labels.shape, 3), np.uint8)
    picture[:] = IGNORE_COLOUR
    known = labels < len(CLASS_COLOURS)
    picture[known] = CLASS_COLOURS[labels[known]]
    return picture


def side_by_side(panels: list[np.ndarray]) -> np.ndarray:
    """BGR panels of one height joined left to right with a black gap between them."""
    gap = np.zeros((panels[0].shape[0], GAP, 3), np.uint8)
    row = [panels[0]]
    for panel in panels[1:]:
        row += [gap, panel]
    return np.concatenate(row, axis=1)


def _titled(picture: np.ndarray, title: str) -> np.ndarray:
    import cv2

    canvas = np.zeros((picture.shape[0] + TITLE_HEIGHT, picture.shape[1], 3), np.uint8)
    canvas[TITLE_HEIGHT:] = picture
    cv2.putText(canvas, title, (3, TITLE_HEIGHT - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
    return canvas


def representation_picture(cache: Cache, index: int, name: str) -> tuple[np.ndarray, str]:
    """Window ``index`` of representation ``name`` as red (positive) and blue (negative) activity,
    read from the cache or computed from its stored events, and a note for its title: of a stack
    (--stack), the last sub-window, the one ending at the window's end."""
    tensors = WindowTensors(cache, name)
    tensor = tensors[index]
    note = ""
    if tensor.ndim == 4:
        tensor, note = tensor[-1], f" (sub-window {len(tensor)} of {len(tensor)})"
    return events_picture(*tensors.representation.activity(tensor)), note


def legend(width: int, labelled: bool) -> np.ndarray:
    """A strip under the panels: the polarity colours, and the classes' colours when labels are drawn."""
    import cv2

    entries = [("positive", (0, 0, 255)), ("negative", (255, 0, 0))]
    if labelled:
        entries += [(name, tuple(int(c) for c in colour)) for name, colour in zip(CLASS_NAMES, CLASS_COLOURS)]
        entries.append(("ignored", tuple(int(c) for c in IGNORE_COLOUR)))
    rows, x = [], 4
    strip = np.full((LEGEND_ROW, width, 3), 40, np.uint8)
    for name, colour in entries:
        size = cv2.getTextSize(name, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)[0][0] + 22
        if x + size > width and x > 4:
            rows.append(strip)
            strip, x = np.full((LEGEND_ROW, width, 3), 40, np.uint8), 4
        cv2.rectangle(strip, (x, 4), (x + 12, LEGEND_ROW - 5), colour, -1)
        cv2.rectangle(strip, (x, 4), (x + 12, LEGEND_ROW - 5), (200, 200, 200), 1)
        cv2.putText(strip, name, (x + 16, LEGEND_ROW - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
        x += size + 6
    rows.append(strip)
    return np.concatenate(rows, axis=0)


def render_window(cache: Cache, index: int, repr: str | None = None) -> np.ndarray:
    """A BGR picture of window ``index``: representation, then the APS frame, the pseudo-labels and
    the ground truth where the cache holds them, over a legend. Without ``repr``: the cache's
    first representation, or the event image of stored events."""
    name = repr or (cache.representations[0] if cache.representations else EvImage.name)
    if not 0 <= index < len(cache):
        raise EvtoolsError(f"{cache.path}: window {index} out of range (the cache has {len(cache)} windows)")
    n_events = int(cache.n_events[index])
    picture, note = representation_picture(cache, index, name)
    panels = [_titled(picture, f"#{index} {name}{note}, {n_events} events")]
    if cache.has(CacheArray.APS):
        aps = cache.window(CacheArray.APS, index)
        t_ms = int(cache.values(CacheArray.FRAME_T)[index]) / 1000
        panels.append(_titled(np.repeat(aps[..., None], 3, axis=2), f"APS at {t_ms:.1f} ms"))
    labelled = False
    for array, title in ((CacheArray.LABELS, "pseudo-labels"), (CacheArray.GT_LABELS, "ground truth")):
        if cache.has(array):
            panels.append(_titled(labels_picture(cache.window(array, index)), title))
            labelled = True
    row = side_by_side(panels)
    return np.concatenate([row, legend(row.shape[1], labelled)], axis=0)


# A GIF's frame delay is a whole number of hundredths of a second, at most 655.35 s
MIN_FPS, MAX_FPS = 0.01, 1000.0


def write_h264(path: Path, frames: list[np.ndarray], fps: float) -> None:
    """BGR frames as an H.264 .mp4 (yuv420p, sides padded to even numbers as it needs)."""
    import av

    height, width = (side + side % 2 for side in frames[0].shape[:2])
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for frame in frames:
            padded = np.zeros((height, width, 3), np.uint8)
            padded[: frame.shape[0], : frame.shape[1]] = frame
            container.mux(stream.encode(av.VideoFrame.from_ndarray(padded, format="bgr24")))
        container.mux(stream.encode())


def render(cache_path: str | Path, output: str | Path, indices: range, repr: str | None = None, fps: float = 10.0) -> Path:
    """Writes one window as a picture (any OpenCV image format), or a range as .mp4 or .gif."""
    import cv2

    require(MIN_FPS <= fps <= MAX_FPS, "fps", f"from {MIN_FPS:g} to {MAX_FPS:g}", fps)
    cache, output = Cache(cache_path), Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    if output.suffix.lower() not in VIDEO_SUFFIXES:
        return write_picture(output, render_window(cache, indices[0], repr))
    frames = [render_window(cache, k, repr) for k in indices]
    if not frames:
        raise EvtoolsError(f"{cache.path}: no windows in the range asked for")
    if output.suffix.lower() == ".gif":
        animation = cv2.Animation()
        animation.frames = frames
        animation.durations = [int(1000 / fps)] * len(frames)
        written = cv2.imwriteanimation(str(output), animation)
    else:
        write_h264(output, frames, fps)
        written = output.exists() and output.stat().st_size > 0
    if not written:
        raise EvtoolsError(f"{output}: the video could not be written")
    return output
