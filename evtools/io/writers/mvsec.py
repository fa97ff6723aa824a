"""Writes the MVSEC ``*_data.hdf5`` layout (described in io/mvsec.py)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import h5py
import numpy as np

from evtools.events import Events
from evtools.io.writers import written_atomically

CHUNK_ROWS = 1 << 15
US_PER_S = 1e6


def write_mvsec(
    path: str | Path,
    chunks: Iterable[Events],
    *,
    t0_us: int,
    images: np.ndarray | None = None,
    images_t_us: np.ndarray | None = None,
    camera: str = "left",
    n_events: int | None = None,
) -> Path:
    """Writes events (streamed) as the (N, 4) float64 [x, y, t in absolute seconds, p] table:
    chunked and grown as the events come, or, given their number ``n_events``, contiguous, as
    MVSEC's own bag_to_hdf5 (``create_dataset(data=...)``) stores it.

    ``images_t_us`` are on the events' relative clock; ``image_raw_event_inds`` gets, for each
    image, the index of the first event at or after it.
    """
    base = f"davis/{camera}"
    with written_atomically(path) as partial, h5py.File(partial, "w") as h5:
        if n_events is None:
            table = h5.create_dataset(f"{base}/events", (0, 4), np.float64, maxshape=(None, 4), chunks=(CHUNK_ROWS, 4))
        else:
            table = h5.create_dataset(f"{base}/events", (n_events, 4), np.float64)
        image_t = np.asarray(images_t_us if images_t_us is not None else [], np.int64)
        first_at_or_after = np.zeros(len(image_t), np.int64)
        n = 0
        for events in chunks:
            block = np.column_stack(
                [events.x, events.y, (t0_us + events.t) / US_PER_S, events.p.astype(np.float64)]
            ).astype(np.float64)
            if n_events is None:
                table.resize((n + len(events), 4))
            elif n + len(events) > n_events:
                raise ValueError(f"more than the {n_events} events announced")
            table[n : n + len(events)] = block
            first_at_or_after += np.searchsorted(events.t, image_t, side="left")
            n += len(events)
        if n_events is not None and n < n_events:
            raise ValueError(f"{n} events written, {n_events} announced")
        if images is not None:
            h5.create_dataset(f"{base}/image_raw", data=np.asarray(images, np.uint8), chunks=(1, *np.shape(images)[1:]))
            h5.create_dataset(f"{base}/image_raw_ts", data=(t0_us + image_t) / US_PER_S)
            h5.create_dataset(f"{base}/image_raw_event_inds", data=first_at_or_after)
    return Path(path)
