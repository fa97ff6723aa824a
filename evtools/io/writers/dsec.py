"""Writes the DSEC ``events.h5`` layout (described in io/dsec.py)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from evtools.events import Events
from evtools.io.writers import written_atomically


def write_dsec(path: str | Path, events: Events, *, t_offset: int = 0, compression: object = None) -> Path:
    """Writes events whose ``t`` is microseconds after ``t_offset``; ``compression`` is passed to
    h5py (``hdf5plugin.Zstd()`` gives DSEC's own)."""
    t = events.t.astype(np.uint32)
    n_ms = int(t[-1]) // 1000 + 1 if len(t) else 0
    ms_to_idx = np.searchsorted(t, np.arange(n_ms, dtype=np.int64) * 1000, side="left").astype(np.uint64)
    options = {"compression": compression} if compression is not None else {}
    with written_atomically(path) as partial, h5py.File(partial, "w") as h5:
        for name, data in (
            ("x", events.x),
            ("y", events.y),
            ("t", t),
            ("p", (events.p > 0).astype(np.uint8)),
        ):
            h5.create_dataset(f"events/{name}", data=data, chunks=True if len(data) else None, **options)
        h5.create_dataset("ms_to_idx", data=ms_to_idx)
        h5.create_dataset("t_offset", data=np.int64(t_offset))
    return Path(path)
