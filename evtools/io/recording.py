"""The reader-independent view of a recording: sensor size, events by index or time range, frames."""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import ClassVar

import numpy as np

from evtools.errors import CorruptFileError, InputError, reading
from evtools.events import MAX_TIMESTAMP_US, Events, Selection, select_events
from evtools.kernels.order import first_descent

DEFAULT_CHUNK_EVENTS = 1 << 20


@dataclass(frozen=True)
class ReadOptions:
    """Options of the readers that have some (``Recording.read_options`` names a reader's; the
    sensor size is every reader's: where the file gives one, they must agree)."""

    camera: str = "left"  # MVSEC: which DAVIS, left or right; a ROS bag: a namespace; AEDAT4: a stream
    rotate180: bool = False  # DDD17: turn events and frames as the DDD17 authors' tools do
    # (width, height) for formats that do not store it (DSEC, DAT, N-MNIST, EVT without geometry)
    sensor_size: tuple[int, int] | None = None

    def key(self) -> dict:
        """The options as a cache key's JSON values; an unset sensor size is left out, so that
        caches made before the option existed keep their key."""
        values = dataclasses.asdict(self)
        if self.sensor_size is None:
            del values["sensor_size"]
        else:
            values["sensor_size"] = list(self.sensor_size)
        return values


class TimedImages(Sequence):
    """A lazily loaded sequence of uint8 (H, W) images with timestamps on the events' clock.

    Used for APS frames and for ground-truth label masks. ``t_us`` is loaded on first use and
    may be negative for images taken before the first event.
    """

    def __init__(
        self, count: int, shape: tuple[int, int], load: Callable[[int], np.ndarray], times: Callable[[], np.ndarray],
        load_range: Callable[[int, int], np.ndarray] | None = None,
    ):
        self._count = count
        self.shape = shape
        self._load = load
        self._times = times
        self._load_range = load_range  # images [start, stop) in one read; None: one by one
        self.source: Path | None = None  # the recording's file, set by the recording: it names read errors

    @classmethod
    def of_array(cls, images, times: Callable[[], np.ndarray]) -> TimedImages:
        """Images stored as one (N, H, W) array (an h5py dataset), a run of them read at once."""
        return cls(len(images), images.shape[1:], images.__getitem__, times, lambda start, stop: images[start:stop])

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index: int) -> np.ndarray:  # type: ignore[override]
        if not -self._count <= index < self._count:
            raise IndexError(f"image {index} out of range for {self._count} images")
        with reading(self.source):
            return self._load(index % self._count)

    def take(self, indices: np.ndarray) -> np.ndarray:
        """The images at ``indices`` (at least one), stacked: a run of consecutive indices is one
        read where the reader can read a range (one h5py call for a block's MVSEC frames took 54 us
        a frame, against 122 us a frame read one by one)."""
        indices = np.asarray(indices, np.int64)
        if len(indices) and not (0 <= indices.min() and indices.max() < self._count):
            raise IndexError(f"images {indices.min()} to {indices.max()} out of range for {self._count} images")
        with reading(self.source):
            if self._load_range is None:
                return np.stack([self._load(int(i)) for i in indices])
            runs = np.split(indices, np.flatnonzero(np.diff(indices) != 1) + 1)
            return np.concatenate([self._load_range(int(run[0]), int(run[-1]) + 1) for run in runs])

    @cached_property
    def t_us(self) -> np.ndarray:
        with reading(self.source):
            times = np.asarray(self._times(), dtype=np.int64)
        assert len(times) == self._count, "reader gave a timestamp count that differs from the image count"
        beyond = np.flatnonzero((times <= -MAX_TIMESTAMP_US) | (times >= MAX_TIMESTAMP_US))
        if len(beyond):  # a damaged time: a window's start before it would leave int64
            i = int(beyond[0])
            raise CorruptFileError(self.source, f"image {i} has the time {times[i]} us, beyond the ±2^62 us a timestamp can be")
        return times


class SignalsOnAccess(Mapping):
    """A recording's signals (IMU samples, triggers, vehicle signals), named when the recording
    opens and read, all of them, when one is first asked for: decoding them can take seconds (an
    IMU at 1 kHz is one FlatBuffers table or ROS message a sample), which a conversion, which
    never uses them, does not pay; damage in them is reported when they are read."""

    def __init__(self, names: Sequence[str], load: Callable[[], Mapping[str, np.ndarray]]):
        self._names = list(dict.fromkeys(names))  # two IMU streams: one set of names
        self._load = load
        self._values: Mapping[str, np.ndarray] | None = None

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._names:
            raise KeyError(name)
        if self._values is None:
            self._values = self._load()
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def packets_holding(starts: np.ndarray, start: int, stop: int) -> tuple[range, slice]:
    """For events stored in packets (AEDAT4 packets, bag messages) whose first events have the
    indices ``starts`` (cumulative counts, ``starts[-1]`` the total): the packets that hold the
    events [start, stop) of a non-empty range, and where those events lie in their concatenation."""
    first = int(np.searchsorted(starts, start, side="right")) - 1
    last = int(np.searchsorted(starts, stop, side="left"))
    return range(first, last), slice(start - int(starts[first]), stop - int(starts[first]))


class Recording(ABC):
    """One opened recording. Use as a context manager, or call ``close()``.

    Event indices address the events as stored in the file. Events outside the sensor are
    dropped when read, and counted in ``dropped_outside_sensor`` (the sum over all reads so far).
    """

    format_name: ClassVar[str]
    # whether the file gives the sensor size; where it does not, ReadOptions.sensor_size replaces
    # the reader's assumption (a reader may decide per file: a header with or without geometry)
    stores_sensor_size: ClassVar[bool] = True
    # the ReadOptions fields this reader uses besides the sensor size; another set to other than
    # its default is refused: a rotation asked of an MVSEC file would be dropped without a word
    read_options: ClassVar[frozenset[str]] = frozenset()

    def __init__(
        self,
        path: str | Path,
        *,
        width: int,
        height: int,
        n_events: int,
        t0_us: int,
        frames: TimedImages | None = None,
        labels: TimedImages | None = None,
        signals: Mapping[str, np.ndarray] | None = None,
    ):
        self.path = Path(path)
        if not -MAX_TIMESTAMP_US < t0_us < MAX_TIMESTAMP_US:  # a damaged time: later sums would leave int64
            raise CorruptFileError(self.path, f"its first time, {t0_us} us, is beyond the ±2^62 us a timestamp can be")
        self.width = width
        self.height = height
        self.n_events = n_events
        self.t0_us = t0_us
        self.frames = frames
        self.labels = labels
        for images in (frames, labels):
            if images is not None:
                images.source = self.path
        self.signals: Mapping[str, np.ndarray] = signals if signals is not None else {}
        self.dropped_outside_sensor = 0
        self._time_order_checked = False

    def use_sensor_size(self, size: tuple[int, int]) -> None:
        """The sensor size the user gave: replaces an assumed one, must agree with a stored one."""
        width, height = size
        if self.stores_sensor_size and (width, height) != (self.width, self.height):
            raise InputError(self.path, f"--sensor-size {width}x{height} contradicts the {self.width}x{self.height} "
                                        "sensor the file gives")
        if self.frames is not None and self.frames.shape != (height, width):
            raise InputError(self.path, f"--sensor-size {width}x{height} differs from the frames' "
                                        f"{self.frames.shape[1]}x{self.frames.shape[0]}")
        self.width, self.height = width, height

    # Each reader provides the raw decoded columns of an index range, with t already in
    # microseconds relative to the first event; x, y, p may be of any numeric dtype.
    @abstractmethod
    def _read_columns(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]: ...

    def _timestamps(self, start: int, stop: int) -> np.ndarray:
        """Relative timestamps of an index range; readers override this when t can be read alone."""
        return self._read_columns(start, stop)[0]

    def close(self) -> None:
        """Release the file handles; readers that hold some override this."""

    def __enter__(self) -> Recording:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _clamp(self, start: int, stop: int | None) -> tuple[int, int]:
        stop = self.n_events if stop is None else min(stop, self.n_events)
        start = max(0, min(start, stop))
        return start, stop

    def read(self, start: int = 0, stop: int | None = None, rows: tuple[int, int] | None = None,
             count_dropped: bool = True) -> Selection:
        """The events with file indices in [start, stop) that lie on the sensor (and in rows
        a..b-1 when ``rows`` is given, shifted to start at row 0), with the mask that maps file
        index ranges onto them. ``count_dropped`` False: a look that is not the conversion's read."""
        start, stop = self._clamp(start, stop)
        with reading(self.path):
            columns = self._read_columns(start, stop) if stop > start else (np.empty(0, np.int64),) * 4
        try:
            selection = select_events(*columns, self.width, self.height, rows)
        except ValueError as err:  # values no format allows (a polarity of 7, say): the file is damaged
            raise CorruptFileError(self.path, f"events {start} to {stop - 1}: {err}") from err
        if count_dropped:
            self.dropped_outside_sensor += selection.n_outside_sensor
        return selection

    def events(self, start: int = 0, stop: int | None = None) -> Events:
        """The events with file indices in [start, stop), less those outside the sensor."""
        return self.read(start, stop).events

    def chunks(
        self, chunk_events: int = DEFAULT_CHUNK_EVENTS, start: int = 0, stop: int | None = None
    ) -> Iterator[Events]:
        """Events of [start, stop) in consecutive pieces of at most ``chunk_events`` file events."""
        start, stop = self._clamp(start, stop)
        for begin in range(start, stop, chunk_events):
            yield self.events(begin, min(begin + chunk_events, stop))

    def check_time_order(self, chunk_events: int = DEFAULT_CHUNK_EVENTS) -> None:
        """Refuses a recording whose event times go backwards anywhere (one pass over the times,
        none when ``indices_at_times`` has made that pass already): windows are cut by searching
        times, which a decrease makes meaningless."""
        if self._time_order_checked:
            return
        previous = None
        with reading(self.path):
            for start in range(0, self.n_events, chunk_events):
                previous = self._refuse_descent(self._timestamps(start, min(start + chunk_events, self.n_events)),
                                                start, previous)
        self._time_order_checked = True

    def _refuse_descent(self, stamps: np.ndarray, start: int, previous) -> int:
        """Refuses the times of events start, start + 1, ... when they go backwards, within
        themselves or from ``previous`` (the time of the event before, None for the first);
        returns the last of them."""
        i = first_descent(stamps, previous)
        if i >= 0:
            before = previous if i == 0 else stamps[i - 1]
            raise CorruptFileError(
                self.path, f"event {start + i}: time goes backwards ({before} us, then {stamps[i]} us "
                "after the first event); evtools cuts windows from time-ordered events only")
        return stamps[-1]

    def index_at_time(self, t_us: int) -> int:
        """The index of the first event with t >= t_us, assuming timestamps that do not decrease."""
        lo, hi = 0, self.n_events
        with reading(self.path):
            while lo < hi:
                mid = (lo + hi) // 2
                if self._timestamps(mid, mid + 1)[0] < t_us:
                    lo = mid + 1
                else:
                    hi = mid
        return lo

    def times_at(self, indices: np.ndarray) -> np.ndarray:
        """The relative timestamps of the events at the given file indices (point reads)."""
        with reading(self.path):
            return np.array([self._timestamps(int(i), int(i) + 1)[0] for i in indices], np.int64)

    def indices_at_times(self, times_us: np.ndarray, chunk_events: int = DEFAULT_CHUNK_EVENTS) -> np.ndarray:
        """``index_at_time`` for many times at once, in one pass over the timestamps from the
        earliest time on (readers with an index of their own override this). The first such
        search reads every timestamp and checks the time order on the way (``check_time_order``
        then has nothing left to do): a conversion reads the times once, not twice."""
        times = np.asarray(times_us, np.int64)
        order = np.argsort(times, kind="stable")
        wanted = times[order]
        found = np.full(len(times), self.n_events, np.int64)
        checking = not self._time_order_checked
        if not len(times) and not checking:
            return found
        resolved, previous = 0, None
        with reading(self.path):
            first = 0 if checking else self.index_at_time(int(wanted[0]))
            for start in range(first, self.n_events, chunk_events):
                stamps = self._timestamps(start, min(start + chunk_events, self.n_events))
                if checking:
                    previous = self._refuse_descent(stamps, start, previous)
                upto = int(np.searchsorted(wanted, stamps[-1], side="right"))
                found[order[resolved:upto]] = start + np.searchsorted(stamps, wanted[resolved:upto], side="left")
                resolved = upto
                if resolved == len(wanted) and not checking:
                    break
        self._time_order_checked = True
        return found

    def events_between(self, t_start_us: int, t_stop_us: int) -> Events:
        """The events with t_start_us <= t < t_stop_us."""
        return self.events(self.index_at_time(t_start_us), self.index_at_time(t_stop_us))

    @property
    def last_t_us(self) -> int:
        """The last event's relative time (the first event's is 0 by definition)."""
        if not self.n_events:
            return 0
        with reading(self.path):
            return int(self._timestamps(self.n_events - 1, self.n_events)[0])
