"""Recording -> windows -> kernels -> Zarr cache, streaming, resumable and crash-safe.

Windows are processed in blocks (at most BLOCK_WINDOWS windows and, unless one window alone is
larger, MAX_BLOCK_EVENTS events): each block's events are read, filtered to the sensor and the
row crop, turned into every requested representation in reused buffers, and written; only then
is the block recorded as done. Memory is bounded by the block, not the recording.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import closing
from concurrent.futures import Executor, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numba
import numpy as np

from evtools import cache
from evtools.cache import CacheArray, repr_array
from evtools.devices import check_device
from evtools.errors import EvtoolsError, InputError
from evtools.events import MAX_PACKED_PIXELS, Events, pack_window
from evtools.io import ReadOptions, Recording, open_recording
from evtools.io.fingerprint import fingerprint, source_size
from evtools.io.ground_truth import GroundTruth, load_ground_truth
from evtools.io.writers import require_free_space
from evtools.kernels.launch import host_buffer
from evtools.progress import Progress, report
from evtools.representations import Representation, VoxelGrid
from evtools.windows import BeforeFrame, Windows, WindowSpec, WindowError

BLOCK_WINDOWS = 16
EMPTY_RUN_WINDOWS = 64 * BLOCK_WINDOWS
MAX_BLOCK_EVENTS = 1 << 22
# how stored events are encoded, part of the cache key (a new encoding makes old caches stale)
STORED_EVENTS = {"encoding": "dt-xyp-uint32", "chunk_events": cache.EVENT_CHUNK}
STORED_EVENTS_OUTPUT = "events"  # a block's packed windows, among its arrays' values



@dataclass(frozen=True)
class ConvertSpec:
    """What a conversion makes. ``window`` None means 50 ms before each APS frame."""

    representations: tuple[Representation, ...] = (VoxelGrid(),)
    # also store each window's events (``--repr events``), from which any representation can be
    # computed when the cache is read
    events: bool = False
    window: WindowSpec | None = None
    crop_rows: tuple[int, int] | None = None
    device: str = "cpu"
    format: str | None = None
    read_options: ReadOptions = field(default_factory=ReadOptions)
    overwrite: bool = False
    codec: str = "zstd"  # Blosc compressor of the cache's chunks: zstd (smaller) or lz4 (faster)
    float16: bool = False  # float representations stored in half precision (half the bytes)
    # masks for ``gt_labels``: a ground-truth file (the simulator's), or a folder of them named
    # like the recordings; recordings with masks of their own (ess_ddd17) use those
    ground_truth: Path | None = None


@dataclass(frozen=True)
class ConvertResult:
    output: Path
    windows: int
    events: int  # events that went into the representations (on the sensor, inside the crop)
    seconds: float
    bytes_on_disk: int
    bytes_uncompressed: int
    resumed_from: int  # windows found already written by an interrupted run
    up_to_date: bool  # a finished cache with the same key was already there: nothing was done
    dropped_outside_sensor: int
    # events after the last window's end (after the last frame in the frame-aligned modes): in
    # no window, by definition of those modes; reported so that nothing is dropped silently
    events_after_last_window: int = 0


def kernel_threads_sleep_between_calls() -> None:
    """Asks OpenMP, before Numba first loads it, for threads that sleep between kernel calls, so
    that they leave the cores to the compressing threads; by default they spin after each call
    (measured: 2.50 against 2.35 s for 20 M events on 2 cores). The conversion command does this
    (its --jobs workers inherit it); single calls from Python keep the default, which wakes about
    15 us faster a call. It does nothing once OpenMP is loaded."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def kernels_without_blas_check() -> None:
    """Loads Numba's numpy support with scipy.linalg hidden, so that the check for BLAS it makes
    once, on import, does not import scipy.linalg (and start OpenBLAS's threads) where scipy is
    installed: a fresh 20 M-event conversion on 2 cores took 1.67 s against 1.82 (medians of 6,
    alternating), and blocking all of scipy saved 0.37 s on a 16-core machine. The check only
    chooses how Numba compiles np.correlate and np.convolve of floats (its own loop instead of
    BLAS), which no kernel uses; linear algebra compiled later still imports scipy.linalg when it
    is compiled. The conversion command does this; calls from Python keep Numba's default. It
    does nothing once either is loaded."""
    if "numba.np.arraymath" in sys.modules or "scipy.linalg" in sys.modules:
        return
    sys.modules["scipy.linalg"] = None  # an import of it, or of a module in it, raises ImportError
    try:
        importlib.import_module("numba.np.arraymath")
    finally:
        del sys.modules["scipy.linalg"]


def cache_path(output: str | Path) -> Path:
    """``OUT`` names the cache ``OUT.zarr`` (given with or without the suffix); a URL
    (``s3://bucket/caches/rec``) names one in that fsspec store."""
    output = cache.location(output)
    return output if output.suffix == ".zarr" else output.with_name(output.name + ".zarr")


def _window_spec(recording: Recording, spec: ConvertSpec) -> WindowSpec:
    if spec.window is not None:
        return spec.window
    if recording.frames is None or not len(recording.frames):
        raise WindowError(f"{recording.path}: the recording has no APS frames; give fixed windows with --every 50ms")
    return BeforeFrame()


def _check_crop(recording: Recording, crop: tuple[int, int] | None) -> int:
    if crop is None:
        return recording.height
    first, stop = crop
    if not 0 <= first < stop <= recording.height:
        raise InputError(recording.path, f"crop rows {first}:{stop} do not fit the sensor's {recording.height} rows")
    return stop - first


def _ground_truth(recording: Recording, input_path: Path, spec: ConvertSpec) -> GroundTruth | None:
    if spec.ground_truth is not None:
        truth = load_ground_truth(spec.ground_truth, input_path)
    elif recording.labels is not None:
        labels = recording.labels
        truth = GroundTruth(recording.t0_us + labels.t_us, labels.__getitem__, labels.shape, recording.path, "recording")
    else:
        return None
    truth.check_fits(recording.width, recording.height)
    return truth


FILE_BLOCK_BYTES = 4096  # the least a file takes on common file systems
STORED_CHUNK_BYTES = 32  # the least a chunk takes in a shard: Blosc's 16-byte header, 16 of index


def _check_memory(spec: ConvertSpec, stack: int, width: int, height: int) -> None:
    """Refuses representations whose block buffers alone exceed the machine's memory (two sets
    of BLOCK_WINDOWS windows: one computed while the other is compressed)."""
    window_bytes = stack * sum(rep.channels * height * width * rep.dtype.itemsize for rep in spec.representations)
    need = 2 * BLOCK_WINDOWS * window_bytes
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if need > memory:
        raise EvtoolsError(f"a window of these representations takes {window_bytes / 1e9:.2f} GB, and the {2 * BLOCK_WINDOWS} "
                           f"windows a conversion holds need {need / 1e9:.1f} GB, more than this machine's "
                           f"{memory / 1e9:.1f} GB: use fewer --bins, a smaller --stack or --crop-rows")


def _check_free_space(output: Path, windows: Windows, spec: ConvertSpec, width: int, height: int) -> None:
    """Refuses a conversion that cannot fit: every window of every representation takes at least
    a Blosc header and its shard-index entry, each shard file at least a file-system block, and a
    window of n events holds at most n values per channel (compressed to at least a byte each).
    A lower bound: a conversion refused here would certainly fill the disk (``--every 1us``, a
    corrupt last timestamp)."""
    if cache.is_remote(output):
        return  # a remote store's free space is not known here
    counts = windows.stop - windows.start
    shards = -(-len(windows) // BLOCK_WINDOWS)
    need = 0
    for rep in spec.representations:
        channels, dense = rep.channels, rep.channels * height * width * rep.dtype.itemsize
        need += int(np.maximum(np.minimum(counts * channels, dense), STORED_CHUNK_BYTES).sum()) + shards * FILE_BLOCK_BYTES
    if spec.events:  # two arrays, a chunk per EVENT_CHUNK events, a file per shard holding any
        chunks = -(-counts // cache.EVENT_CHUNK)
        shards_with_events = len(np.unique(np.flatnonzero(counts) // BLOCK_WINDOWS))
        need += 2 * (int(chunks.sum()) * STORED_CHUNK_BYTES + shards_with_events * FILE_BLOCK_BYTES)
    require_free_space(output, need, f"{len(windows):,} windows")


def _blocks(windows: Windows, first: int, stop: int | None = None) -> Iterator[slice]:
    """Consecutive blocks of windows from ``first`` to ``stop``, bounded in windows and in events.
    A run of windows without events and without frames (a pause, a time jump) makes blocks of up
    to EMPTY_RUN_WINDOWS, whole multiples of BLOCK_WINDOWS: nothing is computed for them, and
    one block is one call to store them and one record of progress instead of 64."""
    k, stop = first, len(windows) if stop is None else stop
    while k < stop:
        end = k + 1
        while end < min(k + BLOCK_WINDOWS, stop):
            span = int(windows.stop[k : end + 1].max()) - int(windows.start[k : end + 1].min())
            if span > MAX_BLOCK_EVENTS:
                break
            end += 1
        if end - k == BLOCK_WINDOWS and windows.frame_index is None:
            ahead = slice(k, min(k + EMPTY_RUN_WINDOWS, stop))
            empty = windows.start[ahead] == windows.stop[ahead]
            run = len(empty) if empty.all() else int(np.argmin(empty))
            end = max(end, k + run - run % BLOCK_WINDOWS)
        yield slice(k, end)
        k = end


@dataclass
class _Conversion:
    """What one conversion works with, filled in by its steps."""

    input_path: Path
    output: Path
    spec: ConvertSpec
    recording: Recording
    width: int
    height: int  # after the crop
    window: WindowSpec
    ground_truth: GroundTruth | None
    key: cache.CacheKey
    windows: Windows | None = None


def convert(input_path: str | Path, output: str | Path, spec: ConvertSpec = ConvertSpec(), progress: Progress | None = None) -> ConvertResult:
    """Converts one recording into the cache ``output`` (``.zarr`` appended when missing)."""
    started = time.perf_counter()
    input_path, output = Path(input_path), cache_path(output)
    check_request(input_path, output, spec)
    with cache.cache_lock(output), open_recording(input_path, spec.format, spec.read_options) as recording:
        prepared = prepare(input_path, output, spec, recording)
        if prepared is None:
            return conversion_result(output, started, resumed_from=0, up_to_date=True, dropped=0)
        job, group, resumed_from = prepared
        _write_windows(job, group, resumed_from, progress)
        cache.finish(group, output)
        return conversion_result(output, started, resumed_from, up_to_date=False, dropped=recording.dropped_outside_sensor,
                                 after_last_window=events_after_last_window(job))


def prepare(input_path: Path, output: Path, spec: ConvertSpec, recording: Recording):
    """Everything before the windows are computed: the plan and its key, the windows, the partial
    cache and how many windows it already holds: (job, partial group, windows done), or None
    when a finished cache with the same key is already there. The caller holds the lock."""
    job = _plan(input_path, output, spec, recording)
    if spec.overwrite:
        cache.remove_cache(output)
    elif cache.finished_matches(output, job.key):
        return None
    _cut_windows(job)
    group, done = _open_partial(job)
    return job, group, done


def check_request(input_path: Path, output: Path, spec: ConvertSpec) -> None:
    """What can be refused before the recording is opened."""
    names = [rep.name for rep in spec.representations] + (["events"] if spec.events else [])
    if not names or len(set(names)) != len(names):
        raise EvtoolsError(f"give each representation once, at least one (got {', '.join(names) or 'none'})")
    if spec.events and spec.window is not None and spec.window.stack > 1:
        raise EvtoolsError("--stack does not combine with --repr events (the events are stored per window, and "
                           "training computes any representation, stacks not yet, from them)")
    check_device(spec.device, kernels=True)
    if (input_path.is_dir() and not cache.is_remote(output)
            and output.absolute().resolve().is_relative_to(input_path.absolute().resolve())):
        raise InputError(output, f"is inside the input folder {input_path}: writing there would change the input's "
                                 "fingerprint; write the cache elsewhere")


def _plan(input_path: Path, output: Path, spec: ConvertSpec, recording: Recording) -> _Conversion:
    """The window mode, the sensor after the crop, the ground truth and the cache key."""
    if recording.n_events == 0:
        raise InputError(input_path, "the recording holds no events")
    window = _window_spec(recording, spec)
    height = _check_crop(recording, spec.crop_rows)
    _check_memory(spec, window.stack, recording.width, height)
    if spec.events and recording.width * height >= MAX_PACKED_PIXELS:
        raise InputError(input_path, f"a {recording.width}x{height} sensor is too large to store its events (at most 2^31 pixels)")
    ground_truth = _ground_truth(recording, input_path, spec)
    key = cache.CacheKey(
        source_fingerprint=fingerprint(input_path),
        window=window.params(),
        crop=list(spec.crop_rows) if spec.crop_rows else None,
        representations={rep.name: rep.params() for rep in spec.representations},
        read_options=spec.read_options.key(),
        ground_truth=ground_truth.fingerprint if ground_truth else None,
        events=STORED_EVENTS if spec.events else None,
        float_dtype="float16" if spec.float16 else None,
    )
    return _Conversion(input_path, output, spec, recording, recording.width, height, window, ground_truth, key)


def _cut_windows(job: _Conversion) -> None:
    """The windows, from time-ordered events, refused when the output cannot fit the disk."""
    # after the cut, whose search over the times checks their order on the way (this then reads
    # nothing); a descent is what explains a cut that failed, so it is reported first
    try:
        job.windows = job.window.cut(job.recording, job.spec.crop_rows)
    except Exception:
        job.recording.check_time_order()
        raise
    job.recording.check_time_order()
    _check_free_space(job.output, job.windows, job.spec, job.width, job.height)
    if job.windows.frame_index is None:
        job.ground_truth = None  # masks belong to frames: windows without frames get none
    elif job.spec.ground_truth is not None:  # a file given for it, not the recording's own masks
        frame_t = job.recording.frames.t_us[job.windows.frame_index]
        job.ground_truth.require_a_frame(job.recording.t0_us + frame_t, job.input_path)


def _open_partial(job: _Conversion):
    """The partial cache to write into, and the windows an interrupted run already wrote there."""
    done = cache.resume_point(job.output, job.key)
    if done is not None:
        return cache.open_partial(job.output), done
    recording, windows, spec, truth = job.recording, job.windows, job.spec, job.ground_truth
    with_aps = windows.frame_index is not None
    group = cache.create_partial(
        job.output,
        job.key,
        {"path": str(job.input_path.resolve()), "format": recording.format_name, "size": source_size(job.input_path)},
        {cache.CacheAttr.SENSOR: {"width": job.width, "height": job.height}, cache.CacheAttr.T0: recording.t0_us},
        cache.conversion_arrays(
            len(windows), job.width, job.height, spec.representations, with_aps, truth is not None,
            truth.condition_names if truth is not None and truth.has_conditions else None,
            # counted before the crop: at least enough
            int((windows.stop - windows.start).max(initial=0)) if spec.events else None,
            spec.float16,
            job.window.stack,
        ),
        BLOCK_WINDOWS,
        spec.codec,
        initial={CacheArray.T_START: windows.t_start_us, CacheArray.T_END: windows.t_end_us,
                 **({CacheArray.FRAME_T: recording.frames.t_us[windows.frame_index]} if with_aps else {})},
    )
    return group, 0


def _write_windows(job: _Conversion, group, done: int, progress: Progress | None) -> None:
    """Every window from ``done`` on, block by block, recorded as done once stored."""
    events_done = int(np.sum(group[CacheArray.N_EVENTS][:done])) if done else 0
    stored = _stored_blocks(job.recording, job.windows, _blocks(job.windows, done), job.spec, job.width, job.height,
                            job.ground_truth, group, mark=True)
    with closing(stored):
        for block, n_events in stored:
            events_done += n_events
            report(progress, block.stop, len(job.windows), events=events_done)


def _stored_blocks(recording: Recording, windows: Windows, blocks: Iterator[slice], spec: ConvertSpec, width: int,
                   height: int, ground_truth: GroundTruth | None, group, mark: bool) -> Iterator[tuple[slice, int]]:
    """Computes and stores ``blocks`` in order, yielding each block and its number of events once
    it is stored; with ``mark``, the windows stored are recorded as done in ``group`` as
    _ProgressMarks says. A reader thread reads the next block (events, frames, masks: all of the
    recording's I/O) while the kernels compute this one. Two sets of buffers: the kernels fill one
    while the compressors encode the other's windows, queued on them as soon as they were
    computed; a set is filled again once its encodings are done, while a writer thread stores the
    blocks in order (at most UNSTORED_BLOCKS encoded blocks wait for it). Close the generator when
    leaving it early: closing waits for the blocks in flight."""
    buffer_sets = [_block_buffers(spec, width, height) for _ in range(2)]
    reading: list[list[Future]] = [[] for _ in buffer_sets]  # the queued tasks that read each set
    arrays = _Arrays(group)
    marks = _ProgressMarks(group) if mark else None
    unstored: deque[tuple[Future, slice, int]] = deque()
    read = partial(_read_block, recording, windows, spec, ground_truth)
    try:
        with ThreadPoolExecutor(max_workers=1) as writer, _compressors() as compressors, \
                closing(_read_ahead(read, blocks)) as read_blocks:
            for number, (block, block_input) in enumerate(read_blocks):
                buffers = number % len(buffer_sets)
                wait(reading[buffers])
                outputs = _compute_block(recording, windows, block, block_input, spec, width, height,
                                         buffer_sets[buffers])
                queued = _QueuedFor(compressors)
                writes = _start_block(arrays, block, outputs, queued)
                reading[buffers] = queued.futures
                before = unstored[-1][0] if unstored else None
                unstored.append((writer.submit(_store_block, block, writes, marks, before), block,
                                 int(outputs[CacheArray.N_EVENTS].sum())))
                while unstored and (unstored[0][0].done() or len(unstored) > UNSTORED_BLOCKS):
                    yield _when_stored(unstored.popleft())
            while unstored:
                yield _when_stored(unstored.popleft())
    finally:  # the writer is done: every block stored is recorded, however the conversion ends
        if marks is not None:
            marks.close()


# Encoded blocks that may wait for the writer thread, so that the kernels may run that far ahead
# of it: the bytes held beyond the two buffer sets are at most one block's encodings more than
# when each set waited for its block to be stored.
UNSTORED_BLOCKS = 2


class _QueuedFor(Executor):
    """The compressors as one block's writes see them, keeping what is queued for the block: its
    buffers are free once these tasks are done."""

    def __init__(self, pool: Executor):
        self.pool = pool
        self.futures: list[Future] = []

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future = self.pool.submit(fn, *args, **kwargs)
        self.futures.append(future)
        return future


def _read_ahead(read: Callable[[slice], object], blocks: Iterator[slice]) -> Iterator[tuple[slice, object]]:
    """(block, read(block)) for each block, in order, the next block read on a thread of its own
    while the caller works on this one (h5py and the readers' passes release the GIL). A read
    that fails raises when its block is reached, after the blocks before it; closing the
    generator waits for the read in progress."""
    with ThreadPoolExecutor(max_workers=1) as reader:
        pending: tuple[slice, Future] | None = None
        for block in blocks:
            following = (block, reader.submit(read, block))
            if pending is not None:
                yield pending[0], pending[1].result()
            pending = following
        if pending is not None:
            yield pending[0], pending[1].result()


def _when_stored(in_flight: tuple[Future, slice, int]) -> tuple[slice, int]:
    future, block, n_events = in_flight
    future.result()
    return block, n_events


def _block_buffers(spec: ConvertSpec, width: int, height: int) -> dict[str, np.ndarray]:
    """One block's output buffer per representation, reused block after block (page-locked for
    CUDA)."""
    stack = spec.window.stack if spec.window is not None else 1
    return {rep.name: host_buffer((BLOCK_WINDOWS * stack, *rep.shape(width, height)), rep.dtype, spec.device)
            for rep in spec.representations}


def _compressors() -> ThreadPoolExecutor:
    """One compressing thread per core this process may use (Blosc releases the GIL): Numba's
    thread count, the cores of the process's affinity unless NUMBA_NUM_THREADS sets it, as each
    worker of a local cluster has its share of the cores (one per core, N workers would run N
    times the cores in compressors)."""
    return ThreadPoolExecutor(max_workers=numba.config.NUMBA_NUM_THREADS)


@dataclass
class _BlockInput:
    """What one block needs from the recording: its events, the index ranges of each window (and
    of each sub-window of a stack) in them, the windows' ends, and the arrays stored as read."""

    events: Events
    ranges: np.ndarray  # (B, 2) each window's events
    kernel_ranges: np.ndarray  # what the kernels take as windows: the windows, or a stack's sub-windows
    ends: np.ndarray  # each kernel window's t_end
    stored: dict[str, np.ndarray]  # counts, frames, masks: arrays stored without computing


def _read_block(recording: Recording, windows: Windows, spec: ConvertSpec, ground_truth: GroundTruth | None,
                block: slice) -> _BlockInput:
    """A block's events, frames and masks: all that a block reads from the recording."""
    lo, hi = int(windows.start[block].min()), int(windows.stop[block].max())
    selection = recording.read(lo, hi, spec.crop_rows)
    ranges = np.column_stack(
        [selection.kept_before(windows.start[block] - lo), selection.kept_before(windows.stop[block] - lo)]
    )
    stored = {CacheArray.N_EVENTS: ranges[:, 1] - ranges[:, 0]}
    # a stack's sub-windows are windows to the kernels: (B * S) of them, reshaped to (B, S, ...)
    kernel_ranges, ends = ranges, windows.t_end_us[block]
    if windows.sub_bounds is not None:
        bounds = selection.kept_before(windows.sub_bounds[block] - lo)
        kernel_ranges = np.column_stack([bounds[:, :-1].ravel(), bounds[:, 1:].ravel()])
        ends = windows.sub_t_end_us[block].ravel()
    if windows.frame_index is not None:
        frames = recording.frames.take(windows.frame_index[block])
        stored[CacheArray.APS] = frames[:, spec.crop_rows[0] : spec.crop_rows[1]] if spec.crop_rows else frames
        if ground_truth is not None:
            frame_abs = recording.t0_us + recording.frames.t_us[windows.frame_index[block]]
            stored[CacheArray.GT_LABELS] = ground_truth.masks(frame_abs, recording.height, recording.width,
                                                              spec.crop_rows)
            if ground_truth.has_conditions:
                stored[CacheArray.GT_CONDITION] = ground_truth.conditions(frame_abs)
    return _BlockInput(selection.events, ranges, kernel_ranges, ends, stored)


def _compute_block(recording: Recording, windows: Windows, block: slice, block_input: _BlockInput, spec: ConvertSpec,
                   width: int, height: int, buffers: dict) -> dict[str, np.ndarray]:
    """Every array's values for the windows of one block, keyed by array name."""
    events, ranges = block_input.events, block_input.ranges
    outputs = dict(block_input.stored)
    for rep in spec.representations:
        shape = buffers[rep.name].shape[1:]
        if windows.sub_bounds is not None:
            shape = (windows.sub_bounds.shape[1] - 1, *shape)  # a stack's sub-windows
        if not len(events):  # every representation of no events is zero: not computed, encoded once
            outputs[repr_array(rep.name)] = cache.zero_windows(len(ranges), shape, rep.dtype)
            continue
        extra = {"ends_us": block_input.ends} if rep.uses_window_end else {}
        grids = rep.batch(events.t, events.x, events.y, events.p, block_input.kernel_ranges, width, height,
                          spec.device, out=buffers[rep.name][: len(block_input.kernel_ranges)], **extra)
        outputs[repr_array(rep.name)] = grids.reshape(len(ranges), *shape)
        if spec.float16 and rep.dtype.kind == "f":
            _check_half_range(recording, rep, outputs[repr_array(rep.name)], block.start)
    if spec.events:
        outputs[STORED_EVENTS_OUTPUT] = [_packed(recording, events[a:b], t_start, width, block.start + k)
                                         for k, ((a, b), t_start) in enumerate(zip(ranges, windows.t_start_us[block]))]
    return outputs


@dataclass(frozen=True)
class RangeTask:
    """What a worker needs to convert a range of one recording's windows into its partial cache:
    plain values that travel to other processes and machines (which must see the same paths)."""

    input_path: Path
    output: Path
    spec: ConvertSpec
    width: int
    height: int


def range_task(job: _Conversion) -> RangeTask:
    return RangeTask(job.input_path, job.output, job.spec, job.width, job.height)


def convert_range(task: RangeTask, windows: Windows, first: int, stop: int) -> tuple[int, int]:
    """Computes and stores windows [first, stop) into the partial cache, which must exist; returns
    (events stored, events dropped outside the sensor). Ranges that start at a multiple of
    BLOCK_WINDOWS write chunks no other range writes, so ranges run in any order, anywhere, and
    a range run twice (a worker lost midway) writes the same bytes again."""
    spec = task.spec
    with open_recording(task.input_path, spec.format, spec.read_options) as recording:
        truth = _ground_truth(recording, task.input_path, spec) if windows.frame_index is not None else None
        stored = _stored_blocks(recording, windows, _blocks(windows, first, stop), spec, task.width, task.height,
                                truth, cache.open_partial(task.output), mark=False)
        with closing(stored):
            events = sum(n_events for _, n_events in stored)
        return events, recording.dropped_outside_sensor


def _packed(recording: Recording, events, t_start: int, width: int, k: int):
    try:
        return pack_window(events, t_start, width)
    except ValueError as err:  # a gap of 2^32 us or more inside one window
        raise InputError(recording.path, f"window {k}: {err}") from None


FLOAT16_MAX = float(np.finfo(np.float16).max)


def _check_half_range(recording: Recording, rep: Representation, values: np.ndarray, first: int) -> None:
    """Refuses values that float16 would store as infinite."""
    peaks = np.abs(values).reshape(len(values), -1).max(axis=1, initial=0)
    if (peaks > FLOAT16_MAX).any():
        k = int(np.argmax(peaks > FLOAT16_MAX))
        raise InputError(recording.path, f"window {first + k}: a {rep.name} value of {peaks[k]:g} is beyond float16's "
                                         f"range ({FLOAT16_MAX:g}); convert without --dtype float16")


def _start_block(arrays: _Arrays, block: slice, outputs: dict[str, np.ndarray], compressors: Executor
                 ) -> list[Callable[[], None]]:
    """Queues the encodings of a block's values on the compressors; returns the calls that then
    store them (the stored events, packed already, are written as they are)."""
    return [partial(_store_events, arrays, block.start, values) if name == STORED_EVENTS_OUTPUT
            else cache.start_write(arrays[name], block.start, values, compressors)
            for name, values in outputs.items()]


class _Arrays(dict):
    """A group's arrays by name, each looked up once: a lookup reads the array's metadata (0.35
    ms here), block after block."""

    def __init__(self, group):
        super().__init__()
        self.group = group

    def __missing__(self, name: str):
        self[name] = array = self.group[name]
        return array


def _store_events(arrays: _Arrays, first: int, packed: list) -> None:
    for i, name in enumerate(cache.EVENT_ARRAYS):
        cache.write_events(arrays[name], first, [window[i] for window in packed])


def _store_block(block: slice, writes: list[Callable[[], None]], marks: _ProgressMarks | None,
                 before: Future | None) -> None:
    """Stores a block's writes; then, with ``marks`` (a conversion in order; a cluster's client
    records ranges itself), counts the windows up to its end as stored. Nothing is stored after a
    block ``before`` (stored first by the same writer thread) that failed: recording this block
    as done would record that one too."""
    if before is not None:
        before.result()
    for store in writes:
        store()
    if marks is not None:
        marks.stored(block.stop)


class _ProgressMarks:
    """Records the windows stored so far as done in a partial cache, on a thread of its own: each
    record rewrites the group's metadata through zarr (4-7 ms here), which the writer thread, that
    stores every block, need not wait for. Records are made in order, one for the latest windows
    stored when the thread comes to it (a record that a later one supersedes is skipped);
    ``close`` waits for the last and raises the first error of any."""

    def __init__(self, group):
        self.group = group
        self.recorder = ThreadPoolExecutor(max_workers=1)
        self.latest: int | None = None
        self.failure: Exception | None = None  # the first record's error
        self.lock = threading.Lock()

    def stored(self, stop: int) -> None:
        with self.lock:
            self.latest = stop
        self.recorder.submit(self._record)

    def _record(self) -> None:
        with self.lock:
            stop, self.latest = self.latest, None
        if stop is None:
            return
        try:
            cache.mark_progress(self.group, stop)  # only once the windows' data is stored
        except Exception as err:
            self.failure = self.failure or err

    def close(self) -> None:
        self.recorder.shutdown(wait=True)
        if self.failure is not None:
            raise self.failure


def events_after_last_window(job: _Conversion) -> int:
    return job.recording.n_events - int(job.windows.stop.max()) if len(job.windows) else job.recording.n_events


def conversion_result(output: Path, started: float, resumed_from: int, up_to_date: bool, dropped: int,
                      after_last_window: int = 0) -> ConvertResult:
    opened = cache.Cache(output)
    uncompressed = cache.uncompressed_size(opened)
    return ConvertResult(
        output=output,
        windows=len(opened),
        events=int(opened.n_events.sum()),
        seconds=time.perf_counter() - started,
        bytes_on_disk=cache.disk_size(output),
        bytes_uncompressed=uncompressed,
        resumed_from=resumed_from,
        up_to_date=up_to_date,
        dropped_outside_sensor=dropped,
        events_after_last_window=after_last_window,
    )


def output_names(inputs: list[Path], out_dir: Path) -> list[Path]:
    """One cache per input inside ``out_dir``, named after the input; clashing names are refused."""
    outputs = [out_dir / f"{path.name if path.is_dir() else path.stem}.zarr" for path in inputs]
    seen: dict[Path, Path] = {}
    for path, output in zip(inputs, outputs):
        if output in seen:
            raise InputError(path, f"would be converted to {output}, like {seen[output]}; convert them separately")
        seen[output] = path
    return outputs
