"""Window specifications, as frozen dataclasses, and the index ranges they cut from a recording.

Four modes, one per class:
- ``BeforeFrame(duration_us)`` (``--window 50ms``): for APS frame k at time f_k, the events with
  f_k - duration <= t < f_k; the label-aligned window of Ev-SegNet and EvDistill.
- ``EventsBeforeFrame(n_events)`` (``--window-events N``): the N events that end just before
  f_k, fewer near the start of the recording (the ESS style); with a crop, N events of the kept
  rows.
- ``BetweenFrames()`` (``--between-frames``): f_{k-1} <= t < f_k; frame 0 takes every event before it.
- ``Every(period_us)`` (``--every 50ms``): consecutive windows [k period, (k+1) period) over the
  whole recording, for recordings without frames.
- ``AtTimes(ends_us, ...)`` (``--at FILE`` with ``--window 50ms`` or ``--window-events N``):
  windows ending at given times, e.g. DSEC's flow and disparity timestamps or MVSEC's
  ground-truth times.
Frame-aligned modes give exactly one window per frame, empty windows included, so that window k
always belongs to frame k.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import ClassVar

import numpy as np

from evtools.errors import EvtoolsError, InputError, is_whole, require
from evtools.events import MAX_TIMESTAMP_US
from evtools.io.recording import Recording

UNITS_US = {"us": 1, "ms": 1_000, "s": 1_000_000}


MAX_WINDOWS = 50_000_000  # a cache of more windows than this is a mistake, not a plan
# A window's events: more than any recording holds, and a stack of them stays within int64
MAX_WINDOW_EVENTS = 1 << 40
MAX_STACK = 1 << 20


class WindowError(EvtoolsError):
    """A window mode that the recording cannot provide."""


def parse_duration(text: str) -> int:
    """'50ms', '1.5s', '200us' -> integer microseconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(us|ms|s)\s*", text)
    if not match:
        raise ValueError(f"'{text}' is not a duration such as 50ms, 1s or 500us")
    value = Fraction(match[1]) * UNITS_US[match[2]]  # exact: a float rounds 2^62 - 1 us up to 2^62
    if value >= MAX_TIMESTAMP_US:
        raise ValueError(f"'{text}' is longer than the 2^62 us a timestamp spans")
    if round(value) <= 0:
        raise ValueError(f"'{text}' is not a positive duration")
    return round(value)


def _require_span(name: str, value: int | None, most: int) -> None:
    """A window's duration or event count: a whole number from 1 to ``most``, or None (unused)."""
    if value is not None:
        require(is_whole(value) and 1 <= value <= most, name, f"a whole number from 1 to {most}", value)


@dataclass(frozen=True)
class Windows:
    """K windows: [start, stop) event indices, their time spans, and the frame each belongs to;
    with a stack, each window's S consecutive sub-windows too."""

    start: np.ndarray  # (K,) int64 file event indices
    stop: np.ndarray
    t_start_us: np.ndarray  # (K,) int64, relative to the first event
    t_end_us: np.ndarray
    frame_index: np.ndarray | None  # (K,) int64 into the recording's frames, for frame-aligned modes
    sub_bounds: np.ndarray | None = None  # (K, S + 1) int64 event indices: sub-window i is [b_i, b_i+1)
    sub_t_end_us: np.ndarray | None = None  # (K, S) each sub-window's end (the time surface's reference)

    def __len__(self) -> int:
        return len(self.start)


@dataclass(frozen=True)
class WindowSpec:
    """A window mode. ``stack`` S > 1 makes each window a stack of S consecutive sub-windows: of
    equal time where the mode cuts by time (``--window 50ms --stack 10``: ten 5 ms sub-windows
    ending at the frame), of ``n_events`` each where it cuts by count (``--window-events 32000
    --stack 20``: twenty of 32,000 events, ESS's DDD17 input)."""

    stack: int = field(default=1, kw_only=True)
    mode: ClassVar[str]
    by_count: ClassVar[bool] = False  # the modes that count ``n_events``, which they then have

    def __post_init__(self) -> None:
        _require_span("stack", self.stack, MAX_STACK)
        for name in ("duration_us", "period_us"):
            _require_span(name, getattr(self, name, None), MAX_TIMESTAMP_US - 1)
        _require_span("n_events", getattr(self, "n_events", None), MAX_WINDOW_EVENTS)

    def params(self) -> dict:
        """The spec as a plain dict, for cache attributes (the stack only when there is one, so
        that unstacked caches keep their keys)."""
        return {"mode": self.mode, **self._mode_params(), **({"stack": self.stack} if self.stack > 1 else {})}

    def _mode_params(self) -> dict:
        return {}

    def cut(self, recording: Recording, rows: tuple[int, int] | None = None) -> Windows:
        """The windows; ``rows``, the crop, matters only where a window is a count of events."""
        windows = self._cut(recording, rows)
        if self.stack == 1:
            return windows
        if self.by_count:
            if rows is not None:
                raise WindowError(f"{recording.path}: --stack with --window-events counts events of the whole sensor; "
                                  "it does not combine with --crop-rows")
            offsets = (np.arange(self.stack + 1) - self.stack) * self.n_events  # -S*n, ..., -n, 0 from the stop
            bounds = np.maximum(windows.stop[:, None] + offsets, windows.start[:, None])
            last = np.maximum(bounds[:, 1:] - 1, 0).ravel()
            filled = (bounds[:, 1:] > bounds[:, :-1]).ravel()
            ends = np.repeat(windows.t_end_us, self.stack)
            ends[filled] = recording.times_at(last[filled])
            sub_ends = ends.reshape(-1, self.stack)
        else:
            span = windows.t_end_us - windows.t_start_us
            times = windows.t_start_us[:, None] + span[:, None] * np.arange(self.stack + 1) // self.stack
            bounds = recording.indices_at_times(times.ravel()).reshape(times.shape)
            bounds[:, 0], bounds[:, -1] = windows.start, windows.stop  # the window's own ends, exactly
            sub_ends = times[:, 1:]
        return dataclasses.replace(windows, sub_bounds=bounds, sub_t_end_us=sub_ends)

    def _cut(self, recording: Recording, rows: tuple[int, int] | None) -> Windows:
        raise NotImplementedError

    def _events_per_window(self) -> int:
        """A count mode's window: its stack of sub-windows of ``n_events`` each."""
        return self.n_events * self.stack

    def _frame_times(self, recording: Recording) -> np.ndarray:
        if recording.frames is None or not len(recording.frames):
            raise WindowError(
                f"{recording.path}: the recording has no APS frames, which --{self.mode} needs; "
                "use --every 50ms for fixed windows instead"
            )
        return recording.frames.t_us


def _spans_ending_at(recording: Recording, ends: np.ndarray, duration_us: int) -> tuple[np.ndarray, ...]:
    """(start, stop, t_start, t_end) of the windows [end - duration, end)."""
    t_start = ends - duration_us
    bounds = recording.indices_at_times(np.concatenate([t_start, ends]))
    return bounds[: len(ends)], bounds[len(ends) :], t_start, ends.copy()


def _counts_ending_at(recording: Recording, ends: np.ndarray, n_events: int,
                      rows: tuple[int, int] | None) -> tuple[np.ndarray, ...]:
    """(start, stop, t_start, t_end) of the windows of the N events before each end (fewer near
    the start of the recording; with a crop, N events of the kept rows)."""
    stop = recording.indices_at_times(ends)
    start = np.maximum(stop - n_events, 0) if rows is None else _starts_in_rows(recording, stop, n_events, rows)
    t_start = ends.copy()  # an empty window starts and ends at its end
    filled = start < stop
    t_start[filled] = recording.times_at(start[filled])
    return start, stop, t_start, ends.copy()


def _starts_in_rows(recording: Recording, stops: np.ndarray, n_events: int, rows: tuple[int, int]) -> np.ndarray:
    """Where each window starts so that it holds N events of the kept rows (fewer at the start):
    the events before each stop are read back, twice as many again until N are kept."""
    starts = np.zeros_like(stops)
    for k, stop in enumerate(stops.tolist()):
        span = n_events
        while True:
            start = max(stop - span, 0)
            keep = recording.read(start, stop, rows, count_dropped=False).keep
            kept = np.arange(stop - start) if keep is None else np.flatnonzero(keep)
            if len(kept) >= n_events:  # the N-th kept event before the stop opens the window
                starts[k] = start + int(kept[-n_events])
                break
            if start == 0:
                break
            span *= 2
    return starts


@dataclass(frozen=True)
class BeforeFrame(WindowSpec):
    duration_us: int = 50_000
    mode: ClassVar[str] = "window"

    def _mode_params(self) -> dict:
        return {"duration_us": self.duration_us}

    def _cut(self, recording: Recording, rows: tuple[int, int] | None) -> Windows:
        frame_t = self._frame_times(recording)
        return Windows(*_spans_ending_at(recording, frame_t, self.duration_us), np.arange(len(frame_t)))


@dataclass(frozen=True)
class EventsBeforeFrame(WindowSpec):
    n_events: int = 32_000
    mode: ClassVar[str] = "window-events"
    by_count: ClassVar[bool] = True

    def _mode_params(self) -> dict:
        return {"n_events": self.n_events}

    def _cut(self, recording: Recording, rows: tuple[int, int] | None) -> Windows:
        frame_t = self._frame_times(recording)
        return Windows(*_counts_ending_at(recording, frame_t, self._events_per_window(), rows), np.arange(len(frame_t)))


@dataclass(frozen=True)
class BetweenFrames(WindowSpec):
    mode: ClassVar[str] = "between-frames"

    def _cut(self, recording: Recording, rows: tuple[int, int] | None) -> Windows:
        frame_t = self._frame_times(recording)
        stop = recording.indices_at_times(frame_t)
        start = np.concatenate([[0], stop[:-1]])
        t_start = np.concatenate([[min(0, int(frame_t[0]))], frame_t[:-1]])
        return Windows(start, stop, t_start, frame_t.copy(), np.arange(len(frame_t)))


@dataclass(frozen=True)
class Every(WindowSpec):
    period_us: int = 50_000
    mode: ClassVar[str] = "every"

    def _mode_params(self) -> dict:
        return {"period_us": self.period_us}

    def _cut(self, recording: Recording, rows: tuple[int, int] | None) -> Windows:
        count = recording.last_t_us // self.period_us + 1 if recording.n_events else 0
        if count > MAX_WINDOWS:
            raise WindowError(f"{recording.path}: --every {self.period_us}us over {recording.last_t_us / 1e6:.0f} s would "
                              f"cut {count:,} windows (more than {MAX_WINDOWS:,}); a longer period, or a corrupt last "
                              "timestamp?")
        edges = np.arange(count + 1, dtype=np.int64) * self.period_us
        bounds = recording.indices_at_times(edges)
        return Windows(bounds[:-1], bounds[1:], edges[:-1], edges[1:], None)


@dataclass(frozen=True)
class AtTimes(WindowSpec):
    """Windows ending at given times (``--at FILE``): the ``duration_us`` before each, or its
    ``n_events`` events. ``ends_us`` are on the recording's clock (absolute, as DSEC's and MVSEC's
    timestamp files are) unless ``relative`` (to the first event). Windows keep the order given."""

    ends_us: tuple[int, ...] = ()
    relative: bool = False
    duration_us: int | None = None
    n_events: int | None = None
    mode: ClassVar[str] = "at"

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.duration_us is None) == (self.n_events is None):
            raise ValueError("windows at given times need a length: a duration or a number of events, not both")

    @property
    def by_count(self) -> bool:  # type: ignore[override]
        return self.n_events is not None

    def _mode_params(self) -> dict:
        """The times enter the cache key by their digest (they are stored as t_end_us)."""
        digest = hashlib.sha256(np.asarray(self.ends_us, "<i8").tobytes()).hexdigest()
        length = {"duration_us": self.duration_us} if self.duration_us is not None else {"n_events": self.n_events}
        return {"times": len(self.ends_us), "times_sha256": digest, "relative": self.relative, **length}

    def _cut(self, recording: Recording, rows: tuple[int, int] | None) -> Windows:
        ends = np.asarray(self.ends_us, np.int64) - (0 if self.relative else recording.t0_us)
        if self.duration_us is not None:
            return Windows(*_spans_ending_at(recording, ends, self.duration_us), None)
        return Windows(*_counts_ending_at(recording, ends, self._events_per_window(), rows), None)


def read_times(path: str | Path) -> tuple[int, ...]:
    """Whole microseconds, one a line ('#' comments and blank lines skipped)."""
    times = []
    try:
        lines = Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(path, f"unreadable times file ({err})") from err
    for number, line in enumerate(lines, start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        if not re.fullmatch(r"[+-]?\d+", text):
            raise InputError(path, f"line {number}: '{text}' is not one whole number of microseconds "
                                   "(one timestamp a line; cut other columns out first)")
        if abs(int(text)) >= MAX_TIMESTAMP_US:
            raise InputError(path, f"line {number}: {text} us is beyond the ±2^62 us a timestamp can be")
        times.append(int(text))
    if not times:
        raise InputError(path, "holds no timestamps")
    if len(times) > MAX_WINDOWS:
        raise InputError(path, f"holds {len(times):,} timestamps (more than {MAX_WINDOWS:,})")
    return tuple(times)
