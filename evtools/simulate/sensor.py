"""The event sensor model (ESIM-style) and the APS frame model.

Events: each pixel keeps the log intensity at its last event, its reference. Between two rendered
frames the log intensity is taken to change linearly; every time it crosses reference + C_on (or
reference - C_off) a positive (negative) event is emitted at the interpolated time, and the
reference moves by that threshold. Thresholds are drawn per pixel around their means with a
relative spread; crossings within the refractory period after a pixel's last event are not
emitted (the reference still moves, so no burst follows). Noise: shot-noise events at a small
rate on every pixel and a few hot pixels firing often, both with random polarity.

APS: the linear intensity averaged over the exposure before each frame time (motion blur),
times a gain, gamma-encoded (1/2.2), with Gaussian read noise and shot noise, 8 bits, clipped.
An ``ApsCondition`` scales gain, exposure and read noise of one frame, so that frames can fail
(night, over-exposure, motion blur) where the events, which see log intensity, do not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

LOG_EPS = 1e-3  # log(I + eps): dark pixels do not explode


@dataclass(frozen=True)
class SensorModel:
    c_on: float = 0.25
    c_off: float = 0.28
    c_spread: float = 0.03  # relative standard deviation of the per-pixel thresholds
    refractory_us: float = 100.0
    shot_noise_hz: float = 0.05  # per pixel
    hot_pixels: int = 4
    hot_pixel_hz: float = 80.0
    aps_gain: float = 1.0
    aps_read_noise: float = 2.0  # in 8-bit levels
    aps_exposure_us: float = 8_000.0


@dataclass(frozen=True)
class ApsCondition:
    """How one APS frame is exposed, relative to the sensor's well-exposed setting. It changes
    the frame only: the scene and therefore the events stay as they are."""

    name: str
    gain: float = 1.0  # light collected: exposure time and aperture against the scene's brightness
    exposure: float = 1.0  # exposure duration (motion blur)
    read_noise: float = 1.0


# The frames in which a camera's APS fails and its events do not (docs/simulator.md).
APS_CONDITIONS = {
    "normal": ApsCondition("normal"),
    "night": ApsCondition("night", gain=0.01, read_noise=3.0),  # too little light: dark, noisy, little contrast
    "overexposed": ApsCondition("overexposed", gain=20.0),  # glare: nearly everything saturates
    "blur": ApsCondition("blur", exposure=5.0),  # 40 ms exposures at driving speed
}


def log_intensity(intensity: np.ndarray) -> np.ndarray:
    return np.log(intensity.astype(np.float64) + LOG_EPS)


@dataclass
class PixelState:
    """Per-pixel state carried from one rendered frame to the next."""

    reference: np.ndarray  # (H, W) float64 log level at the last event
    last_event_us: np.ndarray  # (H, W) float64
    c_on: np.ndarray
    c_off: np.ndarray
    hot: np.ndarray  # (n, 2) int rows and columns of hot pixels

    @classmethod
    def start(cls, first_log: np.ndarray, model: SensorModel, rng: np.random.Generator) -> PixelState:
        shape = first_log.shape
        spread = lambda mean: np.maximum(mean * (1 + model.c_spread * rng.standard_normal(shape)), 0.01)  # noqa: E731
        hot = np.column_stack([rng.integers(0, shape[0], model.hot_pixels), rng.integers(0, shape[1], model.hot_pixels)])
        return cls(first_log.copy(), np.full(shape, -1e12), spread(model.c_on), spread(model.c_off), hot)


@numba.njit(cache=True)
def _crossings(log0, log1, t0_us, t1_us, reference, last_event_us, c_on, c_off, refractory_us):
    """Events (t_us float, x, y, polarity) of every threshold crossing between two log frames;
    updates the reference and last event time of each pixel in place."""
    height, width = log0.shape
    capacity = 0
    for row in range(height):
        for col in range(width):
            change = log1[row, col] - reference[row, col]
            if change >= c_on[row, col]:
                capacity += int(change / c_on[row, col])
            elif change <= -c_off[row, col]:
                capacity += int(-change / c_off[row, col])
    t = np.empty(capacity)
    x = np.empty(capacity, np.uint16)
    y = np.empty(capacity, np.uint16)
    p = np.empty(capacity, np.int8)
    n = 0
    span = t1_us - t0_us
    for row in range(height):
        for col in range(width):
            start, end, ref = log0[row, col], log1[row, col], reference[row, col]
            change = end - ref
            if change >= c_on[row, col]:
                step, polarity, count = c_on[row, col], 1, int(change / c_on[row, col])
            elif change <= -c_off[row, col]:
                step, polarity, count = -c_off[row, col], -1, int(-change / c_off[row, col])
            else:
                continue
            for k in range(1, count + 1):
                level = ref + k * step
                fraction = (level - start) / (end - start) if end != start else 1.0
                when = t0_us + min(max(fraction, 0.0), 1.0) * span
                if when - last_event_us[row, col] >= refractory_us:
                    t[n], x[n], y[n], p[n] = when, col, row, polarity
                    n += 1
                    last_event_us[row, col] = when
            reference[row, col] = ref + count * step
    return t[:n], x[:n], y[:n], p[:n]


def events_between(
    log0: np.ndarray, log1: np.ndarray, t0_us: float, t1_us: float, state: PixelState, model: SensorModel,
    rng: np.random.Generator,
) -> tuple[np.ndarray, ...]:
    """Signal and noise events in [t0, t1), sorted by time: (t int64 us, x, y, p)."""
    t, x, y, p = _crossings(log0, log1, t0_us, t1_us, state.reference, state.last_event_us, state.c_on, state.c_off,
                            model.refractory_us)
    height, width = log0.shape
    span_s = (t1_us - t0_us) / 1e6
    n_shot = rng.poisson(model.shot_noise_hz * height * width * span_s)
    n_hot = rng.poisson(model.hot_pixel_hz * span_s, len(state.hot))
    hot_rows = np.repeat(state.hot[:, 0], n_hot)
    hot_cols = np.repeat(state.hot[:, 1], n_hot)
    n_noise = n_shot + len(hot_rows)
    noise_t = rng.uniform(t0_us, t1_us, n_noise)
    noise_x = np.concatenate([rng.integers(0, width, n_shot), hot_cols]).astype(np.uint16)
    noise_y = np.concatenate([rng.integers(0, height, n_shot), hot_rows]).astype(np.uint16)
    noise_p = rng.choice(np.array([-1, 1], np.int8), n_noise)
    t_all = np.floor(np.concatenate([t, noise_t])).astype(np.int64)
    order = np.argsort(t_all, kind="stable")
    return (t_all[order], np.concatenate([x, noise_x])[order], np.concatenate([y, noise_y])[order],
            np.concatenate([p, noise_p])[order])


def aps_frame(exposed: np.ndarray, model: SensorModel, rng: np.random.Generator,
              condition: ApsCondition = APS_CONDITIONS["normal"]) -> np.ndarray:
    """An 8-bit APS frame from the exposure-averaged linear intensity."""
    signal = np.clip(model.aps_gain * condition.gain * exposed, 0, None) ** (1 / 2.2) * 255.0
    read_noise = model.aps_read_noise * condition.read_noise
    noisy = signal + rng.normal(0, read_noise, signal.shape) + rng.normal(0, 1, signal.shape) * np.sqrt(signal) * 0.3
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
