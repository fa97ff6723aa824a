"""Writes a small generated recording for `make demo` until the simulator exists (issue 5).

A vertical edge sweeps across a 346 x 260 sensor for one second: pixels it passes fire a
positive event, with APS frames every 50 ms. Usage: demo_recording.py OUT.h5
"""

from __future__ import annotations

import sys

import numpy as np

from evtools.events import Events
from evtools.io.writers.mvsec import write_mvsec

WIDTH, HEIGHT, DURATION_US, FRAME_PERIOD_US = 346, 260, 1_000_000, 50_000


def sweeping_edge(seed: int = 0) -> tuple[Events, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    columns = np.repeat(np.arange(WIDTH), HEIGHT)
    rows = np.tile(np.arange(HEIGHT), WIDTH)
    t = (columns * DURATION_US // WIDTH + rng.integers(0, DURATION_US // WIDTH, columns.size)).astype(np.int64)
    order = np.argsort(t, kind="stable")
    t = t[order] - t[order][0]
    events = Events(t, columns[order].astype(np.uint16), rows[order].astype(np.uint16), np.ones(t.size, np.int8))
    frame_t = np.arange(FRAME_PERIOD_US, DURATION_US, FRAME_PERIOD_US, dtype=np.int64)
    edge = (frame_t * WIDTH // DURATION_US)[:, None, None]
    frames = np.where(np.arange(WIDTH)[None, None, :] < edge, 200, 40).astype(np.uint8).repeat(HEIGHT, axis=1)
    return events, frames, frame_t


if __name__ == "__main__":
    events, frames, frame_t = sweeping_edge()
    write_mvsec(sys.argv[1], [events], t0_us=1_500_000_000_000_000, images=frames, images_t_us=frame_t)
