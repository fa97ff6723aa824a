"""Label masks that come beside a recording: the simulator's ground-truth files (masks at
absolute frame times, and optionally each frame's condition), or a layout's own masks (ESS),
looked up for each window's frame."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from evtools.errors import InputError, reading
from evtools.io.fingerprint import fingerprint
from evtools.labels import IGNORE


class GroundTruth:
    """Label masks at known absolute frame times, looked up for each window's frame, and
    optionally a named condition of each frame (the simulator's APS conditions)."""

    def __init__(self, times_abs_us: np.ndarray, load: Callable[[int], np.ndarray], shape: tuple[int, int],
                 source: Path, fingerprint: str, conditions: np.ndarray | None = None,
                 condition_names: list[str] | None = None):
        self._index = {int(t): i for i, t in enumerate(times_abs_us)}
        self._load = load
        self.shape = shape  # (H, W) of every mask
        self.source = source  # the file the masks are read from
        self.fingerprint = fingerprint
        self._conditions, self.condition_names = conditions, condition_names

    def check_fits(self, width: int, height: int | None) -> None:
        """Refuses masks that cannot cover a sensor of ``width`` x ``height``: as wide, at most as
        many rows (ESS labels 200 of DDD17's 260); ``height`` None: only the width is known."""
        mask_height, mask_width = self.shape
        if mask_width != width or (height is not None and mask_height > height):
            sensor = f"{width}x{height} sensor" if height is not None else f"sensor of {width} columns"
            raise InputError(self.source, f"masks of {mask_width}x{mask_height} do not fit the recording's {sensor}")

    def require_a_frame(self, frame_times_abs_us: np.ndarray, of: Path) -> None:
        """Refuses masks none of which is at a frame time of ``of`` (a recording, a cache): every
        window would be unlabelled, and every score NaN, without a word."""
        if self._index and not any(int(t) in self._index for t in frame_times_abs_us):
            raise InputError(self.source, f"none of its {len(self._index)} masks is at a frame time of {of}: the "
                                          "ground truth of another recording?")

    @property
    def has_conditions(self) -> bool:
        return self._conditions is not None

    def conditions(self, frame_times_abs_us: np.ndarray) -> np.ndarray:
        """(n,) uint8 condition codes at each frame time, 255 where the frame is not listed."""
        out = np.full(len(frame_times_abs_us), 255, np.uint8)
        for k, t in enumerate(frame_times_abs_us):
            i = self._index.get(int(t))
            if i is not None:
                out[k] = self._conditions[i]
        return out

    def masks(self, frame_times_abs_us: np.ndarray, height: int, width: int, crop: tuple[int, int] | None) -> np.ndarray:
        """(n, H, W) uint8 for a sensor of ``height`` rows, then cropped: the mask at each frame
        time, 255 where there is none. A mask with fewer rows than the sensor (ESS's 200 of 260)
        covers the top rows; the rows below are 255."""
        out = np.full((len(frame_times_abs_us), height, width), IGNORE, np.uint8)
        with reading(self.source):
            for k, t in enumerate(frame_times_abs_us):
                i = self._index.get(int(t))
                if i is not None:
                    mask = self._load(i)[:height]
                    out[k, : len(mask)] = mask
        return out if crop is None else out[:, crop[0] : crop[1]]


def load_ground_truth(path: str | Path, recording_path: Path) -> GroundTruth:
    """A simulator ground-truth file, or in a folder of them the one named like the recording."""
    from evtools.io.hdf5 import attribute, open_h5, require, require_frames

    path = Path(path)
    if path.is_dir():
        path = path / f"{recording_path.stem}.hdf5"
    h5 = open_h5(path)
    masks, times = require_frames(h5, "masks", "frame_t_us", "ground-truth", "iu")
    with reading(path):
        times = times[:]
    conditions = names = None
    if "conditions" in h5:
        with reading(path):
            conditions = require(h5, "conditions", "ground-truth")[()]
        names = _condition_names(path, attribute(h5, "conditions"))
        if (np.ndim(conditions) != 1 or conditions.dtype.kind not in "iu" or len(conditions) != len(times)
                or (len(conditions) and not 0 <= int(conditions.min()) <= int(conditions.max()) < len(names))):
            raise InputError(path, "conditions do not match frame_t_us and the condition names")
    return GroundTruth(times, lambda i: masks[i], masks.shape[1:], path, fingerprint(path), conditions, names)


def _condition_names(path: Path, stored) -> list[str]:
    """The ``conditions`` attribute: a JSON list of the condition names."""
    try:
        names = json.loads(stored)
    except (TypeError, ValueError):
        names = None
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise InputError(path, "its attribute 'conditions' is not a JSON list of condition names")
    return names
