"""What ``evtools info`` reports about a recording, computed in one streaming pass."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evtools.errors import EvtoolsError, first_line
from evtools.io.recording import DEFAULT_CHUNK_EVENTS, Recording
from evtools.labels import IGNORE
from evtools.progress import Progress, report

US_PER_S = 1e6


@dataclass(frozen=True)
class RecordingSummary:
    path: str
    format: str
    width: int
    height: int
    n_events: int  # events stored in the file, those outside the sensor included
    n_positive: int
    n_negative: int
    n_outside_sensor: int
    n_backwards: int  # events whose timestamp is below the one before
    t_first_us: int  # absolute time of the first event
    t_last_us: int
    duration_s: float
    event_rate_hz: float
    n_frames: int
    frame_rate_hz: float | None
    first_frame_t_us: int | None  # absolute
    last_frame_t_us: int | None
    n_labels: int
    signals: tuple[str, ...]
    x_range: tuple[int, int] | None  # smallest and largest x of the events on the sensor (None: no events)
    y_range: tuple[int, int] | None
    signal_samples: tuple[int, ...]  # samples of each signal, in the order of ``signals``
    truncated_packets: int  # a packet format's incomplete last packet, left out (AEDAT4)

    @property
    def positive_fraction(self) -> float:
        kept = self.n_positive + self.n_negative
        return self.n_positive / kept if kept else 0.0


def summarize(
    recording: Recording, progress: Progress | None = None, chunk_events: int = DEFAULT_CHUNK_EVENTS
) -> RecordingSummary:
    """Counts, times and rates of a recording; reads every event once, chunk by chunk."""
    n_positive = n_backwards = 0
    x_lo = y_lo = np.iinfo(np.int64).max
    x_hi = y_hi = -1
    dropped_before = recording.dropped_outside_sensor
    previous_t: int | None = None
    done = 0
    for start in range(0, recording.n_events, chunk_events):
        stop = min(start + chunk_events, recording.n_events)
        events = recording.events(start, stop)
        if len(events):
            n_positive += int(np.count_nonzero(events.p > 0))
            n_backwards += int(np.count_nonzero(np.diff(events.t) < 0))
            if previous_t is not None and events.t[0] < previous_t:
                n_backwards += 1
            previous_t = int(events.t[-1])
            x_lo, x_hi = min(x_lo, int(events.x.min())), max(x_hi, int(events.x.max()))
            y_lo, y_hi = min(y_lo, int(events.y.min())), max(y_hi, int(events.y.max()))
        done = stop
        report(progress, done, recording.n_events)
    n_outside = recording.dropped_outside_sensor - dropped_before
    n_kept = recording.n_events - n_outside
    last_rel = recording.last_t_us
    duration_s = last_rel / US_PER_S
    frames = recording.frames
    n_frames = len(frames) if frames is not None else 0
    frame_times = recording.t0_us + frames.t_us if n_frames else None
    frame_span_s = (frame_times[-1] - frame_times[0]) / US_PER_S if n_frames else 0.0
    return RecordingSummary(
        path=str(recording.path),
        format=recording.format_name,
        width=recording.width,
        height=recording.height,
        n_events=recording.n_events,
        n_positive=n_positive,
        n_negative=n_kept - n_positive,
        n_outside_sensor=n_outside,
        n_backwards=n_backwards,
        t_first_us=recording.t0_us,
        t_last_us=recording.t0_us + last_rel,
        duration_s=duration_s,
        event_rate_hz=recording.n_events / duration_s if duration_s > 0 else 0.0,
        n_frames=n_frames,
        frame_rate_hz=(n_frames - 1) / frame_span_s if frame_span_s > 0 else None,
        first_frame_t_us=int(frame_times[0]) if n_frames else None,
        last_frame_t_us=int(frame_times[-1]) if n_frames else None,
        n_labels=len(recording.labels) if recording.labels is not None else 0,
        signals=tuple(recording.signals),
        x_range=(x_lo, x_hi) if x_hi >= 0 else None,
        y_range=(y_lo, y_hi) if y_hi >= 0 else None,
        signal_samples=tuple(len(values) for values in recording.signals.values()),
        truncated_packets=getattr(recording, "truncated_packets", 0),
    )


@dataclass(frozen=True)
class CacheSummary:
    path: str
    schema: int
    evtools_version: str
    complete: bool
    source: dict
    sensor: dict
    window: dict
    crop: list | None
    read_options: dict
    n_windows: int
    n_events: int
    empty_windows: int
    representations: dict  # name -> {"shape", "dtype", "params"}
    stored_events: dict | None  # how the windows' events are stored (--repr events), None when they are not
    has_aps: bool
    has_labels: bool
    label_counts: dict | None  # pixels per class id (and "ignore") of the pseudo-labels
    labels_windows_done: int | None  # windows labelled so far when the pseudo-labelling is unfinished
    has_gt_labels: bool
    bytes_on_disk: int
    bytes_uncompressed: int


def summarize_cache(path: str | Path) -> CacheSummary:
    """What a finished cache holds (opening it checks its schema and completeness)."""
    from evtools.cache import Cache, CacheError

    cache = Cache(path)
    try:
        return _cache_summary(cache)
    except EvtoolsError:
        raise
    except Exception as err:  # noqa: BLE001 - a damaged array or attribute: zarr and the codecs raise many kinds
        raise CacheError(cache.path, f"damaged ({type(err).__name__}: {first_line(err)}); evtools info --verify "
                                     "lists every problem") from err


def _cache_summary(cache) -> CacheSummary:
    from evtools.cache import CacheArray, CacheAttr, disk_size, repr_array, uncompressed_size

    n_events = cache.n_events
    labels_done = cache.windows_done(CacheArray.LABELS) if cache.has(CacheArray.LABELS) else None
    representations = {
        name: {
            "shape": list(cache.array(repr_array(name)).shape),
            "dtype": str(cache.array(repr_array(name)).dtype),
            "params": cache.attrs[CacheAttr.REPRESENTATIONS][name],
        }
        for name in cache.representations
    }
    return CacheSummary(
        path=str(cache.path),
        schema=cache.attrs[CacheAttr.EVTOOLS]["schema"],
        evtools_version=cache.attrs[CacheAttr.EVTOOLS]["version"],
        complete=bool(cache.attrs[CacheAttr.COMPLETE]),
        source=cache.attrs[CacheAttr.SOURCE],
        sensor=cache.attrs[CacheAttr.SENSOR],
        window=cache.attrs[CacheAttr.WINDOW],
        crop=cache.attrs[CacheAttr.CROP],
        read_options=cache.attrs[CacheAttr.READ_OPTIONS],
        n_windows=len(cache),
        n_events=int(n_events.sum()),
        empty_windows=int((n_events == 0).sum()),
        representations=representations,
        stored_events=cache.attrs.get(CacheAttr.EVENTS),
        has_aps=cache.has(CacheArray.APS),
        has_labels=cache.has(CacheArray.LABELS),
        label_counts=_label_counts(cache) if cache.has(CacheArray.LABELS) and labels_done is None else None,
        labels_windows_done=labels_done,
        has_gt_labels=cache.has(CacheArray.GT_LABELS),
        bytes_on_disk=disk_size(cache.path),
        bytes_uncompressed=uncompressed_size(cache),
    )


def _label_counts(cache) -> dict:
    from evtools.cache import CacheArray

    counts = np.zeros(256, np.int64)
    for start in range(0, len(cache), 64):
        counts += np.bincount(cache.windows(CacheArray.LABELS, start, min(start + 64, len(cache))).ravel(), minlength=256)
    return {("ignore" if k == IGNORE else str(k)): int(c) for k, c in enumerate(counts) if c}
