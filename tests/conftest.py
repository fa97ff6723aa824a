import os

# The CUDA kernels run on Numba's CUDA simulator unless the environment asks for a real GPU
# (NUMBA_ENABLE_CUDASIM=0). Numba reads this when it is first imported, so it is set here.
os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import struct

import cv2
import h5py
import numpy as np
import pytest
import torch

from evtools import cache as cache_module
from evtools.convert import ConvertSpec, convert
from evtools.events import Events
from evtools.io.writers.evh5 import write_evh5
from evtools.io.writers.mvsec import write_mvsec
from evtools.models.checkpoint import save_checkpoint
from evtools.models.deeplab import DeepLabConfig, DeepLabV3Plus
from evtools.pseudolabel import PseudolabelSpec, pseudolabel
from evtools.representations import EvImage


def make_events(n: int = 2000, width: int = 346, height: int = 260, span_us: int = 1_000_000, seed: int = 0) -> Events:
    """Sorted random events starting at t = 0."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, span_us, n)).astype(np.int64)
    t -= t[0]
    return Events(
        t,
        rng.integers(0, width, n).astype(np.uint16),
        rng.integers(0, height, n).astype(np.uint16),
        rng.choice(np.array([-1, 1], np.int8), n),
    )


def assert_same_events(actual: Events, expected: Events) -> None:
    for name in ("t", "x", "y", "p"):
        np.testing.assert_array_equal(getattr(actual, name), getattr(expected, name), err_msg=name)
        assert getattr(actual, name).dtype == getattr(expected, name).dtype


@pytest.fixture(autouse=True)
def small_simulated_cuda_launches(monkeypatch):
    """Under Numba's CUDA simulator every CUDA thread is a Python thread, started and joined:
    launches of 2 blocks of 32 threads (per window, per part) run the kernels' grid-stride loops
    over many values a thread, in a tenth of the time of the real shapes. A real GPU
    (NUMBA_ENABLE_CUDASIM=0) runs the real shapes."""
    if os.environ["NUMBA_ENABLE_CUDASIM"] == "1":
        from evtools.kernels import launch

        monkeypatch.setattr(launch, "CUDA_THREADS", 32)
        monkeypatch.setattr(launch, "CUDA_MAX_BLOCKS_X", 2)
        monkeypatch.setattr(launch, "CUDA_MAX_BLOCKS_PER_WINDOW", 2)


def damage_block_at(monkeypatch, first_window: int) -> None:
    """Makes the conversion's read of the block that starts at ``first_window`` fail as a damaged
    recording's would; ``monkeypatch.undo()`` mends it."""
    from evtools import convert as convert_module
    from evtools.errors import InputError

    read_block = convert_module._read_block

    def damaged(recording, windows, spec, truth, block):
        if block.start == first_window:
            raise InputError(recording.path, "events 9 to 10: damaged")
        return read_block(recording, windows, spec, truth, block)

    monkeypatch.setattr(convert_module, "_read_block", damaged)


@pytest.fixture
def events() -> Events:
    return make_events()


# Recordings and caches of the conversion tests
T0_US = 1_504_645_177_410_000


def as_time_class(h5: h5py.File, name: str) -> None:
    """Replaces dataset ``name`` by one of its shape of HDF5's time class, which numpy has no
    dtype for (what a damaged datatype message can say)."""
    shape = h5[name].shape
    del h5[name]
    parent, _, leaf = name.rpartition("/")
    space = h5py.h5s.create_simple(shape) if shape else h5py.h5s.create(h5py.h5s.SCALAR)
    h5py.h5d.create((h5[parent] if parent else h5).id, leaf.encode(), h5py.h5t.UNIX_D64LE, space)


def write_recording(path, n_events=20_000, n_frames=12, span_us=600_000, width=64, height=48, seed=0):
    events = make_events(n_events, width, height, span_us, seed)
    frames_t = np.linspace(30_000, span_us - 1, n_frames).astype(np.int64)
    gradient = np.add.outer(np.arange(height), np.arange(width)) % 256
    images = ((gradient[None] + np.arange(n_frames)[:, None, None] * 7) % 256).astype(np.uint8)
    # the table contiguous, as MVSEC's own files store it (read mapped from the file); the chunked
    # layout is tested in test_io_mvsec.py, test_memory.py and the file fuzzer
    write_mvsec(path, [events], t0_us=T0_US, images=images, images_t_us=frames_t, n_events=len(events))
    return events, frames_t, images


def damage_outcomes(data: bytes, positions, flip: int, path) -> set[str]:
    """Each byte of ``positions`` in ``data`` flipped by ``flip`` in turn, written to ``path`` and
    opened and read whole, frames included: {"read", "one line"} for what happened; an error of
    more than one line, or one that does not name the file, fails the calling test."""
    from evtools.errors import EvtoolsError
    from evtools.io import open_recording

    outcomes = set()
    for at in positions:
        damaged = bytearray(data)
        damaged[at] ^= flip
        path.write_bytes(bytes(damaged))
        try:
            with open_recording(path) as rec:
                rec.read()
                assert all(len(rec.signals[name]) >= 0 for name in rec.signals)  # read when asked for
                if rec.frames is not None:
                    assert len(rec.frames.t_us) == len([rec.frames[k] for k in range(len(rec.frames))])
            outcomes.add("read")
        except EvtoolsError as err:
            assert "\n" not in str(err) and path.name in str(err)
            outcomes.add("one line")
    return outcomes


def assert_same_cache(actual, expected):
    names = sorted(name for name, _ in expected.group.arrays()) + [f"repr/{n}" for n in expected.representations]
    if expected.has_events:
        names += list(cache_module.EVENT_ARRAYS)
        # and no chunk beyond a window's events: the same chunks held, in shards or in files of their own
        for name in cache_module.EVENT_ARRAYS:
            held = []
            for c in (actual, expected):
                array = c.array(name)
                every = list(np.ndindex(*array.cdata_shape))
                held.append(sorted(set(every) - set(cache_module._missing_chunks(array, every))))
            assert held[0] == held[1], name
    for name in names:
        np.testing.assert_array_equal(actual.array(name)[:], expected.array(name)[:], err_msg=name)


# DDD17 packets built byte by byte from the format's description (struct, not evtools' writer)
def header(type_, size, ts_offset, overflow, capacity, number, valid):
    return struct.pack("<hhiiiiii", type_, 1, size, ts_offset, overflow, capacity, number, valid)


def polarity_word(x, y, polarity, valid):
    return (x << 17) | (y << 2) | (polarity << 1) | valid


def polarity_row(overflow, slots, capacity=None):
    """slots: (x, y, polarity, valid, timestamp); capacity beyond len(slots) adds zero slack."""
    capacity = capacity or len(slots)
    body = b"".join(struct.pack("<II", polarity_word(x, y, pol, v), ts) for x, y, pol, v, ts in slots)
    body += bytes(8 * (capacity - len(slots)))
    valid = sum(s[3] for s in slots)
    return header(1, 8, 4, overflow, capacity, len(slots), valid), body


def frame_row(overflow, t_end, pixels16):
    height, width = pixels16.shape
    words = struct.pack("<9i", 1, t_end - 900, t_end, t_end - 800, t_end - 100, width, height, 0, 0)
    body = words + pixels16.astype("<u2").tobytes()
    return header(2, len(body), 0, overflow, 1, 1, 1), body


def special_row(overflow, ts, kind):
    return header(0, 8, 4, overflow, 1, 1, 1), struct.pack("<II", (kind << 1) | 1, ts)


def write_rows(path, rows, empty_rows=3, signals=None):
    with h5py.File(path, "w") as h5:
        data = h5.create_dataset("dvs/data", (len(rows) + empty_rows, 3), h5py.vlen_dtype(np.uint8))
        for i, (head, body) in enumerate(rows):
            data[i, 0] = np.frombuffer(str(1_000_000 + i).encode(), np.uint8)
            data[i, 1] = np.frombuffer(head, np.uint8)
            data[i, 2] = np.frombuffer(body, np.uint8)
        h5.create_dataset("dvs/timestamp", data=np.arange(len(rows) + empty_rows, dtype=np.int64))
        for name, table in (signals or {}).items():
            h5.create_dataset(f"{name}/data", data=table)
    return path


# Student training
STUDENT_W, STUDENT_H = 32, 24
# a student small enough to train in seconds
TINY = ["model.width=0.25", "model.aspp_channels=8", "model.decoder_channels=8", "model.in_channels=2",
        "model.num_classes=3", 'repr="evimage"', "training.crop=[16, 24]", "training.batch_size=2",
        "training.generator_width=4", "training.epochs=1", "training.affinity_nodes=16"]


@pytest.fixture(scope="module")
def student_data(tmp_path_factory):
    """Three tiny pseudo-labelled event-image caches, a random teacher and six labelled images."""
    W, H = STUDENT_W, STUDENT_H
    root = tmp_path_factory.mktemp("student")
    rng = np.random.default_rng(0)
    teacher = DeepLabV3Plus(DeepLabConfig(depth=18, width=0.25, in_channels=1, num_classes=3, aspp_channels=8,
                                          decoder_channels=8))
    teacher_path = save_checkpoint(root / "teacher.pt", teacher.eval())
    caches = []
    for name in ("a", "b", "c"):
        n = 3000
        t = np.sort(rng.integers(0, 300_000, n)).astype(np.int64)
        events = Events(t - t[0], rng.integers(0, W, n).astype(np.uint16), rng.integers(0, H, n).astype(np.uint16),
                        rng.choice(np.array([-1, 1], np.int8), n))
        frames = rng.integers(0, 256, (8, H, W)).astype(np.uint8)
        path = write_evh5(root / f"{name}.h5", [events], width=W, height=H, frames=frames,
                          frames_t_us=np.arange(1, 9) * 35_000)
        cache = convert(path, root / name, ConvertSpec(representations=(EvImage(),))).output
        pseudolabel(cache, PseudolabelSpec(teacher=teacher_path, num_classes=3, scales=(1.0,), flip=False))
        caches.append(cache)
    (root / "images" / "frames").mkdir(parents=True)
    (root / "images" / "masks").mkdir()
    for k in range(6):
        cv2.imwrite(str(root / "images" / "frames" / f"i{k}.png"), rng.integers(0, 256, (H, W)).astype(np.uint8))
        cv2.imwrite(str(root / "images" / "masks" / f"i{k}.png"), rng.integers(0, 3, (H, W)).astype(np.uint8))
    return {"root": root, "caches": caches, "teacher": teacher_path, "images": root / "images"}


# A teacher for pseudo-labelling tests
class Bright(torch.nn.Module):
    """A TorchScript teacher of two classes: bright pixels are class 1."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([-x[:, :1], x[:, :1]], dim=1)
