"""Conversions on a Dask cluster: a local one of N worker processes (``--jobs N``) or a running
distributed cluster (``--scheduler ADDRESS``, started with the standard ``dask scheduler`` and
``dask worker`` commands; every worker must see the inputs and outputs at the same paths).

A recording file of at most WHOLE_BYTES is one task: a worker converts it as a serial conversion
does (its lock, its windows, its cache marked complete), so that many small recordings (N-MNIST's
70,000 files) share the workers instead of waiting on the client. A larger one the client
prepares (plan, key, windows, partial cache) and locks; its work is ranges of RANGE_WINDOWS
windows, each a task that writes its own chunks. As ranges end, the client records the longest
run of finished windows from the start (``windows_done``, what a later run resumes from) and,
once every range of a recording is stored, alone marks its cache complete. A worker lost midway
has its tasks rerun elsewhere by Dask; a range or a recording converted twice writes the same
bytes (a recording resumes from its windows done), so the cache still equals a serial conversion.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from evtools import cache
from evtools.convert import (BLOCK_WINDOWS, ConvertResult, ConvertSpec, cache_path, check_request, conversion_result,
                             convert, convert_range, events_after_last_window, prepare, range_task)
from evtools.devices import check_processes
from evtools.errors import EvtoolsError, InputError, first_line
from evtools.io import open_recording
from evtools.progress import Progress, report

RANGE_WINDOWS = 16 * BLOCK_WINDOWS  # a task: enough windows to outweigh its start, a multiple of BLOCK_WINDOWS
MAX_OPEN = 256  # recordings in flight on a cluster at once (the client holds the lock file of each converted as ranges)
# A recording file up to this size is one task: its windows are too few to be worth sharing out,
# and preparing and finishing each of many on the client would leave the workers waiting
# (README: 200 small recordings, benchmarks/cluster.py --recordings 200 --events 100000 --split)
WHOLE_BYTES = 32 << 20


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
            with _interrupt_deferred():
                client = stack.enter_context(Client(stack.enter_context(local_cluster(jobs))))
        else:
            try:
                client = stack.enter_context(Client(scheduler, timeout=10))
            except (OSError, ValueError) as err:  # unreachable, or not an address
                raise EvtoolsError(f"--scheduler {scheduler}: no Dask scheduler answers there ({first_line(err)})") from None
        return convert_on_cluster(client, inputs, outputs, spec, progress)


@contextmanager
def _interrupt_deferred() -> Iterator[None]:
    """Ctrl-C inside the block (on the main thread) is raised when it ends: a local cluster
    interrupted while it started was left half made, and Dask's exit handler failed on it with
    a traceback of 30 lines; started, it is closed as any interrupted run's."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    interrupted = []
    previous = signal.signal(signal.SIGINT, lambda number, frame: interrupted.append(number))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if interrupted:
        raise KeyboardInterrupt


def local_cluster(workers: int):
    """A LocalCluster of ``workers`` processes of one task each, the cores shared among them."""
    from distributed import LocalCluster

    threads = max(1, len(os.sched_getaffinity(0)) // workers)
    # errors only in Dask's logs (theirs is WARN): each input's outcome is evtools' to report,
    # and Ctrl-C made the workers and nannies warn of cancelled tasks and workers killed. No
    # dashboard; the scheduler's HTTP server (which it starts anyway) on a free port of this
    # machine only: it took 8787 and warned when another cluster held it
    return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                        env={"NUMBA_NUM_THREADS": str(threads)}, silence_logs=logging.ERROR)


def convert_on_cluster(client, inputs: list[Path], outputs: list[Path], spec: ConvertSpec, progress: Progress | None = None,
                       range_windows: int = RANGE_WINDOWS, open_at_once: int | None = None,
                       whole_bytes: int = WHOLE_BYTES) -> list[ConvertResult | EvtoolsError]:
    """Converts ``inputs[i]`` into ``outputs[i]`` on the cluster of ``client``; each input's
    result or error (one input's failure leaves the others converting). Files of at most
    ``whole_bytes`` are a task each, larger recordings ranges of ``range_windows`` windows. At
    most ``open_at_once`` recordings (default: 4 a worker, at most MAX_OPEN) are submitted at a
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
    whole: dict = {}  # future -> input
    completed = as_completed()
    waiting = iter(range(len(inputs)))

    def end(i: int, result: ConvertResult | EvtoolsError) -> None:
        results[i] = result
        states.pop(i, None)
        locks.pop(i, ExitStack()).close()  # a recording converted whole holds no lock here

    def open_next() -> None:
        """Submits the next input: a small file whole, a larger recording prepared and as ranges
        of its windows (the ones before it that are up to date or fail end at once)."""
        for i in waiting:
            if _converts_whole(inputs[i], whole_bytes):
                future = client.submit(_returning_errors, convert, inputs[i], outputs[i], spec, key=_key("convert-whole"))
                whole[future] = i
                completed.add(future)
                return
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
                    future = client.submit(_returning_errors, convert_range, range_task(job), windows, first, stop,
                                           key=_key("convert-range"))
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
            if future in whole:
                i = whole.pop(future)
                result = _outcome(future, inputs[i])
                if isinstance(result, ConvertResult):
                    report(progress, result.windows, result.windows, i, events=result.events)
                end(i, result)
                open_next()
                continue
            i, first, stop = ranges.pop(future)
            if results[i] is not None:  # the input already failed
                continue
            state = states[i]
            outcome = _outcome(future, inputs[i])
            if isinstance(outcome, EvtoolsError):
                client.cancel([f for f, (j, _, _) in ranges.items() if j == i])
                end(i, outcome)
                open_next()
                continue
            events, dropped = outcome
            state.range_done(first, stop, events, dropped)
            report(progress, state.done_windows, state.total, i, events=state.events)
            if not state.pending:
                end(i, _finish(state))
                open_next()
    finally:  # an error no input's own (the cluster's): the locks still held go
        for lock in locks.values():
            lock.close()
    return results


def _converts_whole(path: Path, whole_bytes: int) -> bool:
    """Whether ``path`` is a recording file small enough to be one task."""
    try:
        return path.is_file() and path.stat().st_size <= whole_bytes
    except OSError:  # unreadable: the ranges' preparation says why
        return False


def _returning_errors(task, *args):
    """``task(*args)`` on a worker, returning the EvtoolsError it raises instead of raising it:
    Dask logs a task's exception with its traceback on the worker's terminal, where a bad input
    is to be one line (the client's)."""
    try:
        return task(*args)
    except EvtoolsError as err:
        return err


def _key(kind: str) -> str:
    """A task's unique key, named for its kind in Dask's dashboard and task stream."""
    return f"{kind}-{uuid.uuid4().hex}"


def _outcome(future, input_path: Path):
    """A task's value or the EvtoolsError it returned, or for any other failure (a task that
    failed on every worker it was given) one naming the input."""
    try:
        return future.result()
    except Exception as err:  # noqa: BLE001 - whatever the task raised, reported as the input's failure
        return InputError(input_path, f"failed ({type(err).__name__}: {first_line(err)})")


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
