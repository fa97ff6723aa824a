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
Frame-aligned modes give exactly one window per frame, empty windows included, so that window k
always belongs to frame k.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from evtools.errors import EvtoolsError
from evtools.io.recording import Recording

UNITS_US = {"us": 1, "ms": 1_000, "s": 1_000_000}


MAX_WINDOWS = 50_000_000  # a cache of more windows than this is a mistake, not a plan


class WindowError(EvtoolsError):
    """A window mode that the recording cannot provide."""


def parse_duration(text: str) -> int:
    """'50ms', '1.5s', '200us' -> integer microseconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(us|ms|s)\s*", text)
    if not match:
        raise ValueError(f"'{text}' is not a duration such as 50ms, 1s or 500us")
    value = round(float(match[1]) * UNITS_US[match[2]])
    if value <= 0:
        raise ValueError(f"'{text}' is not a positive duration")
    return value


@dataclass(frozen=True)
class Windows:
    """K windows: [start, stop) event indices, their time spans, and the frame each belongs to."""

    start: np.ndarray  # (K,) int64 file event indices
    stop: np.ndarray
    t_start_us: np.ndarray  # (K,) int64, relative to the first event
    t_end_us: np.ndarray
    frame_index: np.ndarray | None  # (K,) int64 into the recording's frames, for frame-aligned modes

    def __len__(self) -> int:
        return len(self.start)


@dataclass(frozen=True)
class WindowSpec:
    mode: ClassVar[str]
    needs_frames: ClassVar[bool] = True

    def params(self) -> dict:
        """The spec as a plain dict, for cache attributes."""
        raise NotImplementedError

    def cut(self, recording: Recording, rows: tuple[int, int] | None = None) -> Windows:
        """The windows; ``rows``, the crop, matters only where a window is a count of events."""
        raise NotImplementedError

    def _frame_times(self, recording: Recording) -> np.ndarray:
        if recording.frames is None or not len(recording.frames):
            raise WindowError(
                f"{recording.path}: the recording has no APS frames, which --{self.mode} needs; "
                "use --every 50ms for fixed windows instead"
            )
        return recording.frames.t_us


@dataclass(frozen=True)
class BeforeFrame(WindowSpec):
    duration_us: int = 50_000
    mode: ClassVar[str] = "window"

    def params(self) -> dict:
        return {"mode": self.mode, "duration_us": self.duration_us}

    def cut(self, recording: Recording, rows: tuple[int, int] | None = None) -> Windows:
        frame_t = self._frame_times(recording)
        t_start = frame_t - self.duration_us
        bounds = recording.indices_at_times(np.concatenate([t_start, frame_t]))
        k = len(frame_t)
        return Windows(bounds[:k], bounds[k:], t_start, frame_t.copy(), np.arange(k))


@dataclass(frozen=True)
class EventsBeforeFrame(WindowSpec):
    n_events: int = 32_000
    mode: ClassVar[str] = "window-events"

    def params(self) -> dict:
        return {"mode": self.mode, "n_events": self.n_events}

    def cut(self, recording: Recording, rows: tuple[int, int] | None = None) -> Windows:
        frame_t = self._frame_times(recording)
        stop = recording.indices_at_times(frame_t)
        start = np.maximum(stop - self.n_events, 0) if rows is None else self._starts_in_rows(recording, stop, rows)
        t_start = frame_t.copy()  # an empty window starts and ends at its frame
        filled = start < stop
        t_start[filled] = recording.times_at(start[filled])
        return Windows(start, stop, t_start, frame_t.copy(), np.arange(len(frame_t)))


    def _starts_in_rows(self, recording: Recording, stops: np.ndarray, rows: tuple[int, int]) -> np.ndarray:
        """Where each window starts so that it holds N events of the kept rows (fewer at the
        start): the events before each stop are read back, twice as many again until N are kept."""
        starts = np.zeros_like(stops)
        for k, stop in enumerate(stops.tolist()):
            span = self.n_events
            while True:
                start = max(stop - span, 0)
                keep = recording.read(start, stop, rows, count_dropped=False).keep
                kept = np.arange(stop - start) if keep is None else np.flatnonzero(keep)
                if len(kept) >= self.n_events:  # the N-th kept event before the stop opens the window
                    starts[k] = start + int(kept[-self.n_events])
                    break
                if start == 0:
                    break
                span *= 2
        return starts


@dataclass(frozen=True)
class BetweenFrames(WindowSpec):
    mode: ClassVar[str] = "between-frames"

    def params(self) -> dict:
        return {"mode": self.mode}

    def cut(self, recording: Recording, rows: tuple[int, int] | None = None) -> Windows:
        frame_t = self._frame_times(recording)
        stop = recording.indices_at_times(frame_t)
        start = np.concatenate([[0], stop[:-1]])
        t_start = np.concatenate([[min(0, int(frame_t[0]))], frame_t[:-1]])
        return Windows(start, stop, t_start, frame_t.copy(), np.arange(len(frame_t)))


@dataclass(frozen=True)
class Every(WindowSpec):
    period_us: int = 50_000
    mode: ClassVar[str] = "every"
    needs_frames: ClassVar[bool] = False

    def params(self) -> dict:
        return {"mode": self.mode, "period_us": self.period_us}

    def cut(self, recording: Recording, rows: tuple[int, int] | None = None) -> Windows:
        count = recording.last_t_us // self.period_us + 1 if recording.n_events else 0
        if count > MAX_WINDOWS:
            raise WindowError(f"{recording.path}: --every {self.period_us}us over {recording.last_t_us / 1e6:.0f} s would "
                              f"cut {count:,} windows (more than {MAX_WINDOWS:,}); a longer period, or a corrupt last "
                              "timestamp?")
        edges = np.arange(count + 1, dtype=np.int64) * self.period_us
        bounds = recording.indices_at_times(edges)
        return Windows(bounds[:-1], bounds[1:], edges[:-1], edges[1:], None)


WINDOW_MODES: dict[str, type[WindowSpec]] = {cls.mode: cls for cls in (BeforeFrame, EventsBeforeFrame, BetweenFrames, Every)}


def window_from_params(params: dict) -> WindowSpec:
    fields = {key: value for key, value in params.items() if key != "mode"}
    return WINDOW_MODES[params["mode"]](**fields)
