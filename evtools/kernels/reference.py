"""Plain numpy references of every representation, one window at a time.

Written for clarity, not speed, and independently of the Numba kernels: the tests compare the
kernels against these, and the benchmarks time them. Events are one window's, sorted by time,
with polarity in {-1, +1}.
"""

from __future__ import annotations

import numpy as np


def _normalized_time(t: np.ndarray) -> np.ndarray:
    """(t - t_first) / (t_last - t_first) in float64, a span of 0 counting as 1."""
    if len(t) == 0:
        return np.zeros(0)
    span = max(int(t[-1]) - int(t[0]), 1)
    return (t - t[0]).astype(np.float64) / span


def voxel_grid(t, x, y, p, width, height, bins=5, normalize=False, separate_polarity=False):
    grid = np.zeros((2 * bins if separate_polarity else bins, height, width), np.float64)
    t_star = (bins - 1) * _normalized_time(t)
    lower = np.floor(t_star).astype(np.int64)
    frac = t_star - lower
    if separate_polarity:
        weight = np.ones(len(t))
        channel = lower + np.where(p > 0, 0, bins)
    else:
        weight = p.astype(np.float64)
        channel = lower
    np.add.at(grid, (channel, y, x), weight * (1 - frac))
    upper = lower + 1 < bins
    np.add.at(grid, (channel[upper] + 1, y[upper], x[upper]), (weight * frac)[upper])
    grid = grid.astype(np.float32)
    if normalize:
        nonzero = grid != 0
        if nonzero.any():
            values = grid[nonzero].astype(np.float64)
            mean, std = values.mean(), values.std()
            grid[nonzero] = (values - mean) / std if std > 0 else values - mean
    return grid


def histogram(t, x, y, p, width, height, bins=5, cutoff=10):
    counts = np.zeros((2 * bins, height, width), np.int64)
    span = max(int(t[-1]) - int(t[0]), 1) if len(t) else 1
    time_bin = np.minimum((bins * (t - (t[0] if len(t) else 0))) // span, bins - 1)
    channel = np.where(p > 0, 1, 0) * bins + time_bin
    np.add.at(counts, (channel, y, x), 1)
    return np.minimum(counts, cutoff if cutoff > 0 else 255).astype(np.uint8)


def evimage(t, x, y, p, width, height):
    image = np.zeros((2, height, width), np.float64)
    np.add.at(image, (np.where(p > 0, 0, 1), y, x), 1)
    for channel in image:
        if channel.max() > 0:
            channel /= channel.max()
    return image.astype(np.float32)


def evsegnet(t, x, y, p, width, height):
    out = np.zeros((6, height, width), np.float64)
    tn = _normalized_time(t)
    for index, positive in enumerate((True, False)):
        keep = (p > 0) == positive
        for yy, xx in set(zip(y[keep].tolist(), x[keep].tolist())):
            here = tn[keep & (x == xx) & (y == yy)]
            out[3 * index : 3 * index + 3, yy, xx] = len(here), here.mean(), here.std()
    return out.astype(np.float32)


def timesurface(t, x, y, p, width, height, tau_us=50_000.0, t_end_us=None):
    surface = np.zeros((2, height, width), np.float64)
    if len(t) == 0:
        return surface.astype(np.float32)
    t_end = t[-1] if t_end_us is None else t_end_us
    latest = np.full((2, height, width), np.iinfo(np.int64).min)
    np.maximum.at(latest, (np.where(p > 0, 0, 1), y, x), t)
    seen = latest > np.iinfo(np.int64).min
    surface[seen] = np.exp(-(t_end - latest[seen]) / tau_us)
    return surface.astype(np.float32)
