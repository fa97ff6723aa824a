"""Synthetic event streams for the benchmarks: moving edges plus background noise (synthetic data,
not a recording), sorted by time, with 50 ms windows over them."""

from __future__ import annotations

import numpy as np

from evtools.events import Events


def driving_like_stream(
    n_events: int, width: int = 346, height: int = 260, rate_hz: float = 1e6, seed: int = 0, chunk: int = 1 << 22
) -> Events:
    """70% of events on 24 vertical edges sweeping sideways at different speeds, 30% uniform noise."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, int(n_events / rate_hz * 1e6), n_events)).astype(np.int64)
    x = np.empty(n_events, np.uint16)
    y = rng.integers(0, height, n_events).astype(np.uint16)
    p = rng.choice(np.array([-1, 1], np.int8), n_events)
    start_x = rng.uniform(0, width, 24)
    speed = rng.uniform(-400, 400, 24)  # pixels per second
    for begin in range(0, n_events, chunk):
        part = slice(begin, begin + chunk)
        n = len(t[part])
        edge = rng.integers(0, 24, n)
        on_edge = (start_x[edge] + speed[edge] * t[part] / 1e6 + rng.normal(0, 1.5, n)) % width
        noise = rng.uniform(0, width, n)
        x[part] = np.where(rng.random(n) < 0.7, on_edge, noise).astype(np.uint16) % width
    return Events(t, x, y, p)


def fixed_windows(t: np.ndarray, window_us: int) -> np.ndarray:
    """(K, 2) [start, stop) index ranges of consecutive windows of ``window_us``."""
    edges = np.arange(0, int(t[-1]) + window_us + 1, window_us)
    bounds = np.searchsorted(t, edges, side="left")
    return np.column_stack([bounds[:-1], bounds[1:]]).astype(np.int64)
