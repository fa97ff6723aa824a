"""Pictures and videos of cache windows: the representation, the APS frame and the labels side by side.

Events are drawn red for positive and blue for negative polarity on black, each scaled by its
own 99th percentile of nonzero values; labels use the 6 DDD17 segmentation classes' colours.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from evtools.cache import Cache, CacheArray
from evtools.errors import EvtoolsError
from evtools.labels import CLASS_COLOURS, IGNORE_COLOUR
from evtools.representations import EvImage
from evtools.tensors import WindowTensors

GAP = 4
TITLE_HEIGHT = 18
VIDEO_SUFFIXES = (".mp4", ".gif")
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")  # those OpenCV writes


def events_picture(positive: np.ndarray, negative: np.ndarray) -> np.ndarray:
    picture = np.zeros((*positive.shape, 3), np.uint8)
    for channel, values in ((2, positive), (0, negative)):  # BGR: red is channel 2
        nonzero = values[values > 0]
        if nonzero.size:
            scale = np.percentile(nonzero, 99) or nonzero.max()
            picture[..., channel] = np.clip(values / scale * 255, 0, 255).astype(np.uint8)
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


def representation_picture(cache: Cache, index: int, name: str) -> np.ndarray:
    """Window ``index`` of representation ``name`` as red (positive) and blue (negative) activity,
    read from the cache or computed from its stored events."""
    tensors = WindowTensors(cache, name)
    return events_picture(*tensors.representation.activity(tensors[index]))


def render_window(cache: Cache, index: int, repr: str | None = None) -> np.ndarray:
    """A BGR picture of window ``index``: representation, then APS frame and labels when present.
    Without ``repr``: the cache's first representation, or the event image of stored events."""
    name = repr or (cache.representations[0] if cache.representations else EvImage.name)
    if not 0 <= index < len(cache):
        raise EvtoolsError(f"{cache.path}: window {index} out of range (the cache has {len(cache)} windows)")
    n_events = int(cache.array(CacheArray.N_EVENTS)[index])
    panels = [_titled(representation_picture(cache, index, name), f"#{index} {name}, {n_events} events")]
    if cache.has(CacheArray.APS):
        aps = cache.window(CacheArray.APS, index)
        t_ms = int(cache.array(CacheArray.FRAME_T)[index]) / 1000
        panels.append(_titled(np.repeat(aps[..., None], 3, axis=2), f"APS at {t_ms:.1f} ms"))
    if cache.has(CacheArray.LABELS):
        panels.append(_titled(labels_picture(cache.window(CacheArray.LABELS, index)), CacheArray.LABELS))
    return side_by_side(panels)


def render(cache_path: str | Path, output: str | Path, indices: range, repr: str | None = None, fps: float = 10.0) -> Path:
    """Writes one window as a picture (any OpenCV image format), or a range as .mp4 or .gif."""
    import cv2

    cache, output = Cache(cache_path), Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    if output.suffix.lower() not in VIDEO_SUFFIXES:
        if not cv2.imwrite(str(output), render_window(cache, indices[0], repr)):
            raise EvtoolsError(f"{output}: OpenCV could not write this image format")
        return output
    frames = [render_window(cache, k, repr) for k in indices]
    if not frames:
        raise EvtoolsError(f"{cache.path}: no windows in the range asked for")
    if output.suffix.lower() == ".gif":
        animation = cv2.Animation()
        animation.frames = frames
        animation.durations = [int(1000 / fps)] * len(frames)
        written = cv2.imwriteanimation(str(output), animation)
    else:
        height, width = frames[0].shape[:2]
        writer = cv2.VideoWriter(str(output), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
        for frame in frames:
            writer.write(frame)
        writer.release()
        written = output.exists() and output.stat().st_size > 0
    if not written:
        raise EvtoolsError(f"{output}: OpenCV could not write the video")
    return output
