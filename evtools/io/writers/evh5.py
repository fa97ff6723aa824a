"""Writes evtools' own HDF5 event format (layout in io/evh5.py)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import h5py
import numpy as np

from evtools.events import Events
from evtools.io.evh5 import FORMAT_TAG, FORMAT_VERSION
from evtools.io.writers import written_atomically

CHUNK_EVENTS = 1 << 16


def write_evh5(
    path: str | Path,
    chunks: Iterable[Events],
    *,
    width: int,
    height: int,
    t0_us: int = 0,
    frames: np.ndarray | None = None,
    frames_t_us: np.ndarray | None = None,
) -> Path:
    """Writes events (streamed chunk by chunk) and optional (M, H, W) uint8 frames with their times.

    ``t0_us`` is the absolute time of t = 0 in the given events and frame times; the file keeps
    times relative to its first event, as the format says, and that event's absolute time.
    """
    with written_atomically(path) as partial, h5py.File(partial, "w") as h5:
        h5.attrs.update(
            evtools_format=FORMAT_TAG, evtools_format_version=FORMAT_VERSION, width=width, height=height, t0_us=t0_us
        )
        columns = {
            name: h5.create_dataset(f"events/{name}", (0,), dtype, maxshape=(None,), chunks=(CHUNK_EVENTS,))
            for name, dtype in (("t", np.int64), ("x", np.uint16), ("y", np.uint16), ("p", np.int8))
        }
        n, first = 0, None
        for events in chunks:
            if first is None and len(events):
                first = int(events.t[0])
            for name, column in columns.items():
                column.resize((n + len(events),))
                column[n:] = events.t - first if name == "t" and len(events) else getattr(events, name)
            n += len(events)
        first = first or 0
        h5.attrs["t0_us"] = t0_us + first
        if frames is not None:
            h5.create_dataset("frames", data=np.asarray(frames, np.uint8), chunks=(1, *np.shape(frames)[1:]))
            h5.create_dataset("frames_t", data=np.asarray(frames_t_us, np.int64) - first)
    return Path(path)
