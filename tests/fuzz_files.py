"""Damaged recordings and caches, run in a child process by test_fuzz.py (a crash there fails that
test, not pytest): small valid samples of every format, damaged in seeded random ways (truncated,
bytes flipped, a region overwritten or zeroed, garbage appended), each opened, summarised and
converted as `evtools info` and `evtools convert` do; and a converted cache with one of its files
(metadata or chunk) damaged or deleted, opened, verified and read window by window as
`evtools info --verify` and the dataset do. Every case must end in a result or an EvtoolsError
(what the CLI prints as one line with exit code 2); anything else, or more than 30 s, is a defect.

A case stuck inside HDF5's C code cannot be interrupted in-process (SIGALRM waits for Python to
run again): a watchdog thread then prints what was found so far with that hang as a defect,
naming the function it is stuck in, and ends the process.

Usage: python fuzz_files.py FIRST_SEED STOP_SEED FOLDER. Prints {"outcomes": {outcome: count},
"defects": [...]} as JSON on its last line.
"""

import glob
import json
import os
import shutil
import signal
import sys
import threading
import time
import traceback
from collections import Counter
from pathlib import Path

import numpy as np

from evtools.convert import ConvertSpec, convert
from evtools.errors import EvtoolsError
from evtools.events import Events
from evtools.io import open_recording
from evtools.io.writers.ddd17 import packets_from_events, write_ddd17
from evtools.io.writers.dsec import write_dsec
from evtools.io.writers.evh5 import write_evh5
from evtools.io.writers.mvsec import write_mvsec
from aedat4_files import Aedat4, Frame, write_aedat4
from rosbag_files import mvsec_bag, write_bag
from evtools.summary import summarize, summarize_cache
from evtools.windows import Every

GOLDEN = Path(__file__).resolve().parent / "golden"
W, H = 346, 260
MUTATIONS = ("truncate", "flip", "overwrite", "zero", "append")
# HDF5 layouts only: one dataset replaced by what the layout does not allow
DATASET_MUTATIONS = ("nan", "empty", "two-d", "negative", "huge", "text", "scalar", "shorter", "extreme value")
# one value of a dataset replaced, its type kept: what a damaged field holds (an MVSEC table whose
# first time was 2e13 s was an OverflowError)
EXTREMES = (np.nan, np.inf, -np.inf, 1e17, -1e17, 2e13, -1.0, 0.0)


class Hang(Exception):
    pass


def events(n: int, seed: int) -> Events:
    rng = np.random.default_rng(seed)
    return Events(np.sort(rng.integers(0, 400_000, n)).astype(np.int64), rng.integers(0, W, n).astype(np.uint16),
                  rng.integers(0, H, n).astype(np.uint16), rng.choice(np.array([-1, 1], np.int8), n))


def samples(folder: Path) -> dict[str, tuple[Path, str | None]]:
    """{name: (path, format to force or None)} of small valid recordings."""
    ev = events(5000, 0)
    frames = (np.arange(3 * H * W) % 251).astype(np.uint8).reshape(3, H, W)
    frame_t = np.array([100_000, 200_000, 300_000])
    made = {
        "evh5": (write_evh5(folder / "s.h5", [ev], width=W, height=H, frames=frames, frames_t_us=frame_t), None),
        "mvsec": (write_mvsec(folder / "s_data.hdf5", [ev], t0_us=1_504_645_177_000_000, images=frames,
                              images_t_us=frame_t), None),
        # the table contiguous, as MVSEC's own files hold it: read mapped from the file
        "mvsec_contiguous": (write_mvsec(folder / "c_data.hdf5", [ev], t0_us=1_504_645_177_000_000, images=frames,
                                         images_t_us=frame_t, n_events=len(ev)), None),
        "ddd17": (write_ddd17(folder / "s.hdf5", packets_from_events(
            ev, t0_us=1_500_000_000_000_000, frames=list(zip(frame_t.tolist(), frames)))), None),
        "dsec": (write_dsec(folder / "events.h5", ev), None),
        "aedat4": (write_aedat4(folder / "s.aedat4", aedat4_sample(ev, frames, frame_t), data_table=True), None),
        "rosbag": (write_bag(folder / "s.bag", mvsec_bag(n_messages=8), other_camera=False), None),
    }
    # samples cut from real recordings (tests/golden)
    real = {"dat": ("ncars.dat", None), "nmnist": ("nmnist.bin", "nmnist"), "evt2": ("spinner_evt2.raw", None),
            "evt3": ("street_evt3.raw", None)}
    for name, (file_name, fmt) in real.items():
        made[name] = (Path(shutil.copy(GOLDEN / file_name, folder / file_name)), fmt)
    return made


def aedat4_sample(ev: Events, frames: np.ndarray, frame_t: np.ndarray) -> Aedat4:
    """Event packets of 500 events, each frame after the packets before its time."""
    t0 = 1_600_000_000_000_000
    packets = []
    for start in range(0, len(ev), 500):
        part = ev[start : start + 500]
        packets.append(("events", list(zip((part.t + t0).tolist(), part.x.tolist(), part.y.tolist(), (part.p > 0).tolist()))))
        for k in np.flatnonzero((frame_t >= part.t[0]) & (frame_t < part.t[-1])):
            packets.append(("frame", Frame(int(frame_t[k] + t0), int(frame_t[k] + t0 - 1000), int(frame_t[k] + t0), frames[k])))
    return Aedat4(packets=packets)


def mutate(data: bytes, kind: str, rng: np.random.Generator) -> bytes:
    n = len(data)
    at = int(rng.integers(0, n))
    size = int(rng.integers(1, max(2, n // 20)))
    if kind == "truncate":
        return data[:at]
    if kind == "flip":
        array = bytearray(data)
        for position in rng.integers(0, n, 16):
            array[position] ^= 1 << int(rng.integers(0, 8))
        return bytes(array)
    if kind == "overwrite":
        return data[:at] + rng.integers(0, 256, size, dtype=np.uint8).tobytes() + data[at + size:]
    if kind == "zero":
        return data[:at] + bytes(size) + data[at + size:]
    return data + rng.integers(0, 256, size, dtype=np.uint8).tobytes()


def replace_dataset(path: Path, kind: str, rng: np.random.Generator) -> None:
    import h5py

    with h5py.File(path, "r+") as h5:
        names = []
        h5.visititems(lambda name, item: names.append(name) if isinstance(item, h5py.Dataset) else None)
        name = names[int(rng.integers(0, len(names)))]
        old = h5[name]
        shape, dtype = old.shape, old.dtype
        if kind == "extreme value":
            if old.size and dtype.kind in "iuf":
                values = old[()]
                flat = values.reshape(-1)
                extreme = EXTREMES[int(rng.integers(0, len(EXTREMES)))]
                if dtype.kind in "iu":  # the type's own extremes, or the float's integer part within them
                    info = np.iinfo(dtype)
                    extreme = (info.min, info.max, info.max // 2, 0)[int(rng.integers(0, 4))] if not np.isfinite(extreme) or \
                        not info.min <= extreme <= info.max else int(extreme)
                flat[int(rng.integers(0, flat.size))] = extreme
                old[()] = values
            return
        n = shape[0] if shape else 1
        values = {
            "nan": lambda: np.full(shape, np.nan),
            "empty": lambda: np.empty((0, *shape[1:]), dtype if dtype.kind in "iufb" else np.float64),
            "two-d": lambda: np.zeros((n, 3), np.float64),
            "negative": lambda: np.full(shape, -7, np.int64),
            "huge": lambda: np.full(shape, 2**62, np.int64),
            "text": lambda: np.array([b"abc"] * max(n, 1)),
            "scalar": lambda: np.float64(3.5),
            "shorter": lambda: np.zeros((max(n // 2, 0), *shape[1:]), dtype if dtype.kind in "iufb" else np.float64),
        }[kind]()
        del h5[name]
        h5.create_dataset(name, data=values)


def run_case(path: Path, fmt: str | None, out: Path) -> str:
    with open_recording(path, fmt) as recording:
        summarize(recording)
        window = None if recording.frames is not None and len(recording.frames) else Every(50_000)
    convert(path, out, ConvertSpec(window=window, format=fmt))
    return "accepted"


def run_cache_case(cache: Path) -> str:
    from evtools.cache import Cache
    from evtools.data import CacheDataset

    from evtools.representations import Histogram

    summarize_cache(cache)  # evtools info
    problems = Cache(cache).verify()
    dense, from_events = CacheDataset(cache, with_aps=True), CacheDataset(cache, repr=Histogram(bins=2))
    for k in range(len(dense)):
        dense[k], from_events[k]
    return "accepted" if not problems else "verify found problems"


def damage_cache(sound: Path, case: Path, kind: str, rng: np.random.Generator) -> None:
    shutil.copytree(sound, case)
    files = sorted(p for p in case.rglob("*") if p.is_file())
    target = files[int(rng.integers(0, len(files)))]
    if kind == "append":  # stands for a deleted file here
        target.unlink()
    else:
        target.write_bytes(mutate(target.read_bytes(), kind, rng) if target.stat().st_size else b"x")


CURRENT = {"case": None, "since": time.monotonic()}


def watchdog(outcomes: Counter, defects: list, limit_s: float = 60.0) -> None:
    main_thread = threading.main_thread().ident
    while True:
        time.sleep(1.0)
        if CURRENT["case"] and time.monotonic() - CURRENT["since"] > limit_s:
            frame = sys._current_frames().get(main_thread)
            where = traceback.format_stack(frame)[-1].strip().splitlines()[0] if frame else "unknown"
            defects.append(f"{CURRENT['case']}: stuck for {limit_s:.0f} s, uninterruptibly, at {where}")
            print(json.dumps({"outcomes": dict(sorted(outcomes.items())), "defects": defects}), flush=True)
            os._exit(0)


def attempt(label: str, run, defects: list[str], case: Path) -> str:
    """One case under a 30 s alarm: its outcome; a traceback or an overrun is also a defect. The
    case's files (the input and what converting it left) are removed unless it found one: a long
    run of seeds would otherwise fill the disk (gigabytes a hundred seeds)."""
    CURRENT.update(case=label, since=time.monotonic())
    found = len(defects)
    signal.alarm(30)
    try:
        return run()
    except EvtoolsError:
        return "one-line error"
    except Hang:
        defects.append(f"{label}: more than 30 s")
        return "hang"
    except Exception as err:  # noqa: BLE001 - the defects this module looks for
        defects.append(f"{label}: {type(err).__name__}: {err}\n" + "".join(traceback.format_tb(err.__traceback__)[-3:]))
        return f"traceback {type(err).__name__}"
    finally:
        signal.alarm(0)
        if len(defects) == found:
            for path in case.parent.glob(glob.escape(case.name) + "*"):
                shutil.rmtree(path) if path.is_dir() else path.unlink()


def main(first_seed: int, stop_seed: int, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    outcomes: Counter = Counter()
    defects: list[str] = []
    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(Hang()))
    threading.Thread(target=watchdog, args=(outcomes, defects), daemon=True).start()
    originals = samples(folder / "originals")
    seeds = range(first_seed, stop_seed)
    for seed in seeds:
        rng = np.random.default_rng(seed)
        for name, (path, fmt) in originals.items():
            for kind in MUTATIONS:
                case = folder / f"{seed}-{kind}-{path.name}"
                case.write_bytes(mutate(path.read_bytes(), kind, rng))
                outcome = attempt(f"{name} {kind} seed {seed}",
                                  lambda: run_case(case, fmt, folder / f"{case.name}.zarr"), defects, case)
                outcomes[f"{name}: {outcome}"] += 1
    for seed in seeds:
        rng = np.random.default_rng(2000 + seed)
        for name, (path, fmt) in originals.items():
            if path.suffix not in (".h5", ".hdf5"):
                continue
            for kind in DATASET_MUTATIONS:
                case = folder / f"{seed}-{kind}-{path.name}"
                shutil.copy(path, case)
                replace_dataset(case, kind, rng)
                outcome = attempt(f"{name} dataset {kind} seed {seed}",
                                  lambda: run_case(case, fmt, folder / f"{case.name}.zarr"), defects, case)
                outcomes[f"{name} datasets: {outcome}"] += 1
    sound = convert(originals["evh5"][0], folder / "sound.zarr", ConvertSpec(events=True)).output
    for seed in seeds:
        rng = np.random.default_rng(1000 + seed)
        for kind in MUTATIONS:
            case = folder / f"cache-{seed}-{kind}.zarr"
            damage_cache(sound, case, kind, rng)
            outcomes[f"cache: {attempt(f'cache {kind} seed {seed}', lambda: run_cache_case(case), defects, case)}"] += 1
    print(json.dumps({"outcomes": dict(sorted(outcomes.items())), "defects": defects}))


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]))
