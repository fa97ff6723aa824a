"""Conversions on a Dask cluster: a local one of N worker processes (``--jobs N``) or a running
distributed cluster (``--scheduler ADDRESS``, started with the standard ``dask scheduler`` and
``dask worker`` commands; every worker must see the inputs and outputs at the same paths).

The client prepares each recording (plan, key, windows, partial cache) and holds its lock; the
work is ranges of RANGE_WINDOWS windows, each a task that writes its own chunks. As ranges end,
the client records the longest run of finished windows from the start (``windows_done``, what a
later run resumes from) and, once every range of a recording is stored, alone marks its cache
complete. A worker lost midway has its tasks rerun elsewhere by Dask; a range run twice writes
the same bytes, so the cache still equals a serial conversion.
"""

from __future__ import annotations

import dataclasses
import os
import time
from contextlib import ExitStack
from pathlib import Path

from evtools import cache
from evtools.convert import (BLOCK_WINDOWS, ConvertResult, ConvertSpec, cache_path, check_request, conversion_result,
                             convert, convert_range, events_after_last_window, prepare, range_task)
from evtools.devices import check_processes
from evtools.errors import EvtoolsError, InputError, first_line
from evtools.io import open_recording
from evtools.progress import Progress, report

RANGE_WINDOWS = 16 * BLOCK_WINDOWS  # a task: enough windows to outweigh its start, a multiple of BLOCK_WINDOWS
MAX_OPEN = 256  # recordings converting on a cluster at once, each holding its lock file open


def convert_all(inputs: list[Path], outputs: list[Path], spec: ConvertSpec, jobs: int = 1, scheduler: str | None = None,
                progress: Progress | None = None) -> list[ConvertResult | EvtoolsError]:
    """Converts ``inputs[i]`` into the cache ``outputs[i]``: on the cluster at ``scheduler``, on a
    local cluster of ``jobs`` workers, or one after another in this process (``jobs`` 1).
    Returns each input's result, or its error."""
    check_processes("--jobs", jobs)
    outputs = [cache_path(o) for o in outputs]
    if scheduler is None and jobs == 1:
        results: list[ConvertResult | EvtoolsError] = []
        for i, (input_path, output) in enumerate(zip(inputs, outputs)):
            forward = (lambda update, i=i: progress(dataclasses.replace(update, task=i))) if progress else None
            try:
                results.append(convert(input_path, output, spec, forward))
            except EvtoolsError as err:
                results.append(err)
        return results
    try:
        from distributed import Client
    except ImportError:
        raise EvtoolsError("--jobs and --scheduler run on Dask: pip install 'evtools[cluster]'") from None
    with ExitStack() as stack:
        if scheduler is None:
            client = stack.enter_context(Client(stack.enter_context(local_cluster(jobs))))
        else:
            try:
                client = stack.enter_context(Client(scheduler, timeout=10))
            except (OSError, ValueError) as err:  # unreachable, or not an address
                raise EvtoolsError(f"--scheduler {scheduler}: no Dask scheduler answers there ({first_line(err)})") from None
        return convert_on_cluster(client, inputs, outputs, spec, progress)


def local_cluster(workers: int):
    """A LocalCluster of ``workers`` processes of one task each, the cores shared among them."""
    from distributed import LocalCluster

    threads = max(1, len(os.sched_getaffinity(0)) // workers)
    return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                        env={"NUMBA_NUM_THREADS": str(threads)})


def convert_on_cluster(client, inputs: list[Path], outputs: list[Path], spec: ConvertSpec, progress: Progress | None = None,
                       range_windows: int = RANGE_WINDOWS, open_at_once: int | None = None) -> list[ConvertResult | EvtoolsError]:
    """Converts ``inputs[i]`` into ``outputs[i]`` on the cluster of ``client``; each input's
    result or error (one input's failure leaves the others converting). At most ``open_at_once``
    recordings (default: 4 a worker, at most MAX_OPEN) are prepared, locked and submitted at a
    time, the next opened as one ends: a folder of thousands of recordings neither holds a lock
    file open for each (past the usual limit of 1,024 open files) nor keeps every one's windows
    and results on the cluster."""
    from distributed import as_completed

    if range_windows % BLOCK_WINDOWS:
        raise ValueError(f"range_windows must be a multiple of {BLOCK_WINDOWS}")
    if open_at_once is None:
        open_at_once = min(MAX_OPEN, 4 * max(1, len(client.scheduler_info().get("workers", {}))))
    results: list[ConvertResult | EvtoolsError | None] = [None] * len(inputs)
    states: dict[int, _RecordingRanges] = {}
    locks: dict[int, ExitStack] = {}
    ranges: dict = {}  # future -> (input, first window, stop)
    completed = as_completed()
    waiting = iter(range(len(inputs)))

    def end(i: int, result: ConvertResult | EvtoolsError) -> None:
        results[i] = result
        states.pop(i, None)
        locks.pop(i).close()

    def open_next() -> None:
        """Prepares and submits the next input that has windows to convert (the ones before it
        that are up to date or fail end at once)."""
        for i in waiting:
            started = time.perf_counter()  # a recording's seconds count from its opening
            locks[i] = ExitStack()
            try:
                check_request(inputs[i], outputs[i], spec)
                locks[i].enter_context(cache.cache_lock(outputs[i]))
                with open_recording(inputs[i], spec.format, spec.read_options) as recording:
                    prepared = prepare(inputs[i], outputs[i], spec, recording)
                if prepared is None:
                    end(i, conversion_result(outputs[i], started, resumed_from=0, up_to_date=True, dropped=0))
                    continue
                job, group, done = prepared
                state = states[i] = _RecordingRanges(job.output, group, len(job.windows), done,
                                                     events_after_last_window(job), started)
                if done == len(job.windows):
                    end(i, _finish(state))
                    continue
                windows = client.scatter(job.windows, broadcast=True)
                for first in range(done, len(job.windows), range_windows):
                    stop = min(first + range_windows, len(job.windows))
                    future = client.submit(convert_range, range_task(job), windows, first, stop, pure=False)
                    ranges[future] = (i, first, stop)
                    completed.add(future)
                    state.pending += 1
                return
            except EvtoolsError as err:
                end(i, err)

    try:
        for _ in range(open_at_once):
            open_next()
        for future in completed:
            i, first, stop = ranges.pop(future)
            if results[i] is not None:  # the input already failed
                continue
            state = states[i]
            try:
                events, dropped = future.result()
            except EvtoolsError as err:
                client.cancel([f for f, (j, _, _) in ranges.items() if j == i])
                end(i, err)
                open_next()
                continue
            except Exception as err:  # noqa: BLE001 - a task that failed on every worker it was given
                end(i, InputError(inputs[i], f"failed ({type(err).__name__}: {first_line(err)})"))
                open_next()
                continue
            state.range_done(first, stop, events, dropped)
            report(progress, state.done_windows, state.total, i, events=state.events)
            if not state.pending:
                end(i, _finish(state))
                open_next()
    finally:  # an error no input's own (the cluster's): the locks still held go
        for lock in locks.values():
            lock.close()
    return results


class _RecordingRanges:
    """One recording's ranges as they end: the windows done from the start on, for resuming."""

    def __init__(self, output: Path, group, total: int, done: int, after_last_window: int, started: float):
        self.output, self.group, self.total, self.resumed_from, self.started = output, group, total, done, started
        self.after_last_window = after_last_window
        self.finished: dict[int, int] = {}  # first window of a finished range -> its stop
        self.prefix = done
        self.pending = 0
        self.done_windows = done
        self.events = 0
        self.dropped = 0

    def range_done(self, first: int, stop: int, events: int, dropped: int) -> None:
        self.finished[first] = stop
        self.pending -= 1
        self.done_windows += stop - first
        self.events += events
        self.dropped += dropped
        while self.prefix in self.finished:
            self.prefix = self.finished.pop(self.prefix)
        cache.mark_progress(self.group, self.prefix)


def _finish(state: _RecordingRanges) -> ConvertResult:
    cache.finish(state.group, state.output)
    return conversion_result(state.output, state.started, state.resumed_from, up_to_date=False, dropped=state.dropped,
                             after_last_window=state.after_last_window)
