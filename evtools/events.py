"""The one in-memory form of events: a structure of arrays.

``t`` int64 microseconds relative to the recording's first event, ``x`` and ``y`` uint16
pixel coordinates, ``p`` int8 polarity in {-1, +1}.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

T_DTYPE = np.dtype(np.int64)
# the largest |time| in microseconds evtools reads: room to subtract one time from another in int64
MAX_TIMESTAMP_US = 2**62
XY_DTYPE = np.dtype(np.uint16)
P_DTYPE = np.dtype(np.int8)


@dataclass(frozen=True, eq=False)
class Events:
    """Events of one stretch of a recording, as four equally long arrays."""

    t: np.ndarray
    x: np.ndarray
    y: np.ndarray
    p: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.t)
        for name, dtype in (("t", T_DTYPE), ("x", XY_DTYPE), ("y", XY_DTYPE), ("p", P_DTYPE)):
            array = getattr(self, name)
            if array.ndim != 1 or len(array) != n:
                raise ValueError(f"events.{name} must be 1-D of length {n}, got shape {array.shape}")
            if array.dtype != dtype:
                raise ValueError(f"events.{name} must be {dtype}, got {array.dtype}")

    def __len__(self) -> int:
        return len(self.t)

    def __getitem__(self, index: slice | np.ndarray) -> Events:
        return Events(self.t[index], self.x[index], self.y[index], self.p[index])

    @classmethod
    def empty(cls) -> Events:
        return cls(np.empty(0, T_DTYPE), np.empty(0, XY_DTYPE), np.empty(0, XY_DTYPE), np.empty(0, P_DTYPE))

    @classmethod
    def concatenate(cls, parts: list[Events]) -> Events:
        if not parts:
            return cls.empty()
        return cls(*(np.concatenate([getattr(e, f) for e in parts]) for f in ("t", "x", "y", "p")))


def signed_polarity(p: np.ndarray) -> np.ndarray:
    """Polarity as int8 {-1, +1} from bool, {0, 1} or {-1, +1} input."""
    p = np.asarray(p)
    if p.dtype == np.bool_:
        return np.where(p, 1, -1).astype(P_DTYPE)
    if p.size == 0:
        return np.empty(0, P_DTYPE)
    if p.dtype.kind == "f":
        valid = bool(((p == 1) | (p == -1) | (p == 0)).all())
    else:
        valid = p.min() >= -1 and p.max() <= 1  # integers in [-1, 1] are exactly -1, 0, 1
    if not valid:
        raise ValueError("polarity values must be 0/1, -1/+1 or bool")
    if p.dtype == P_DTYPE and np.count_nonzero(p) == p.size:
        return p  # already -1/+1: no copy
    return np.where(p > 0, 1, -1).astype(P_DTYPE)


@dataclass(frozen=True, eq=False)
class Selection:
    """Events kept from raw columns: ``keep`` marks which raw events were kept (None: all)."""

    events: Events
    keep: np.ndarray | None
    n_outside_sensor: int

    def kept_before(self, positions: np.ndarray) -> np.ndarray:
        """For raw positions 0..n, how many kept events precede each: maps raw index ranges onto
        ``events``."""
        if self.keep is None:
            return np.asarray(positions, np.int64)
        prefix = np.concatenate([[0], np.cumsum(self.keep, dtype=np.int64)])
        return prefix[positions]


def select_events(
    t: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    p: np.ndarray,
    width: int,
    height: int,
    rows: tuple[int, int] | None = None,
) -> Selection:
    """Events built from raw decoded columns of any numeric dtype, keeping those on the sensor
    and, when ``rows`` = (a, b) is given, in rows a..b-1, shifted so that row a becomes row 0.

    The bounds are checked on the raw values, before the cast to uint16, so that a negative or
    huge coordinate cannot wrap onto the sensor.
    """
    from evtools.kernels.select import keep_on_sensor  # Numba: only where events are decoded

    n = len(t)
    t_out, x_out, y_out, p_out = (np.empty(n, dtype) for dtype in (T_DTYPE, XY_DTYPE, XY_DTYPE, P_DTYPE))
    keep = np.empty(n, np.bool_)
    row_lo, row_hi = rows if rows is not None else (0, height)
    n_kept, n_outside, bad_polarity = keep_on_sensor(
        np.asarray(t, T_DTYPE), np.asarray(x), np.asarray(y), np.asarray(p), width, height, row_lo, row_hi,
        t_out, x_out, y_out, p_out, keep)
    if bad_polarity >= 0:
        raise ValueError(f"polarity values must be 0/1, -1/+1 or bool (event {bad_polarity}: {np.asarray(p)[bad_polarity]})")
    events = Events(t_out[:n_kept], x_out[:n_kept], y_out[:n_kept], p_out[:n_kept])
    return Selection(events, None if n_kept == n else keep, n_outside)


# Windows stored as events (``--repr events``): two uint32 words per event. Times as the gap to the
# previous event (the first: to the window's start), small numbers that compress well; position
# and polarity as one word, (y * width + x) * 2 + (p > 0).
PACKED_DTYPE = np.dtype(np.uint32)
MAX_PACKED_PIXELS = 1 << 31  # pixel index * 2 + 1 must fit 32 bits


def pack_window(events: Events, t_start_us: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(dt, xyp) uint32 of one window's time-ordered events starting at or after ``t_start_us``."""
    dt = np.diff(events.t, prepend=np.int64(t_start_us))
    if len(dt) and (dt.min() < 0 or dt.max() > np.iinfo(PACKED_DTYPE).max):
        bad = "goes backwards" if dt.min() < 0 else "jumps by more than 2^32 us"
        raise ValueError(f"event time {bad} inside a window; windows of events need ordered times")
    pixel = events.y.astype(PACKED_DTYPE) * PACKED_DTYPE.type(width) + events.x
    return dt.astype(PACKED_DTYPE), (pixel << 1) | (events.p > 0)


def unpack_window(dt: np.ndarray, xyp: np.ndarray, t_start_us: int, width: int, height: int) -> Events:
    """The events ``pack_window`` packed; a pixel off the ``width`` x ``height`` sensor (a corrupt
    chunk) is refused."""
    t = np.cumsum(dt, dtype=np.int64) + np.int64(t_start_us)
    pixel = xyp >> 1
    if len(pixel) and int(pixel.max()) >= width * height:
        raise ValueError(f"a packed event lies off the {width}x{height} sensor")
    y, x = np.divmod(pixel, PACKED_DTYPE.type(width))
    return Events(t, x.astype(XY_DTYPE), y.astype(XY_DTYPE), np.where(xyp & 1, 1, -1).astype(P_DTYPE))
