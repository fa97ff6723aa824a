import builtins

import h5py
import hdf5plugin
import numpy as np
import pytest
from conftest import assert_same_events, make_events

from evtools.errors import MissingExtraError
from evtools.io import open_recording
from evtools.io.writers.dsec import write_dsec


def test_fields_and_ms_to_idx_seeks(tmp_path):
    path = tmp_path / "events.h5"
    t = np.array([7, 999, 1000, 1001, 2500, 2500, 9000], np.uint32)
    with h5py.File(path, "w") as h5:  # written field by field, independently of evtools' writer
        h5.create_dataset("events/x", data=np.array([0, 639, 1, 2, 3, 4, 5], np.uint16))
        h5.create_dataset("events/y", data=np.array([0, 479, 1, 2, 3, 4, 5], np.uint16))
        h5.create_dataset("events/t", data=t)
        h5.create_dataset("events/p", data=np.array([1, 0, 1, 0, 1, 0, 1], np.uint8))
        h5.create_dataset("ms_to_idx", data=np.searchsorted(t, np.arange(10) * 1000).astype(np.uint64))
        h5.create_dataset("t_offset", data=np.int64(1_600_000_000_000_000))
    with open_recording(path) as rec:
        assert (rec.format_name, rec.width, rec.height, rec.n_events) == ("dsec", 640, 480, 7)
        assert rec.t0_us == 1_600_000_000_000_007
        events = rec.events()
        np.testing.assert_array_equal(events.t, t.astype(np.int64) - 7)
        np.testing.assert_array_equal(events.x, [0, 639, 1, 2, 3, 4, 5])
        np.testing.assert_array_equal(events.p, [1, -1, 1, -1, 1, -1, 1])
        for t_rel in range(-5, 9010, 7):
            assert rec.index_at_time(t_rel) == np.searchsorted(t, t_rel + 7), t_rel


def test_zstd_round_trip(tmp_path):
    events = make_events(3000, width=640, height=480, span_us=3_000_000)
    path = write_dsec(tmp_path / "events.h5", events, t_offset=123, compression=hdf5plugin.Zstd())
    with h5py.File(path) as h5:
        assert h5["events/t"].id.get_create_plist().get_filter(0)[0] == 32015
    with open_recording(path) as rec:
        assert_same_events(rec.events(), events)
        assert rec.events_between(1_000_000, 2_000_000).t.min() >= 1_000_000


def test_missing_hdf5plugin_is_named(tmp_path, monkeypatch):
    path = write_dsec(tmp_path / "events.h5", make_events(10, 640, 480), compression=hdf5plugin.Zstd())
    real_import = builtins.__import__

    def no_hdf5plugin(name, *args, **kwargs):
        if name == "hdf5plugin":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(h5py.h5z, "filter_avail", lambda filter_id: filter_id != 32015)
    monkeypatch.setattr(builtins, "__import__", no_hdf5plugin)
    with pytest.raises(MissingExtraError) as err:
        open_recording(path)
    assert str(err.value) == (
        f"{path}: '/events/x' is compressed with the HDF5 zstd filter, which needs hdf5plugin: pip install 'evtools[dsec]'"
    )


def test_indices_at_times(tmp_path):
    events = make_events(2000, 640, 480, span_us=50_000, seed=1)
    path = write_dsec(tmp_path / "events.h5", events)
    times = np.array([40_000, 0, -1, 10, 60_000, 12_345])
    with open_recording(path) as rec:
        np.testing.assert_array_equal(rec.indices_at_times(times), np.searchsorted(events.t, times))


def test_a_table_or_columns_that_contradict_the_events_are_refused(tmp_path):
    import h5py
    import numpy as np
    import pytest

    from evtools.errors import CorruptFileError
    from evtools.events import Events
    from evtools.io import open_recording
    from evtools.io.writers.dsec import write_dsec

    n = 5000
    t = np.sort(np.random.default_rng(0).integers(0, 50_000, n)).astype(np.int64)
    events = Events(t, np.zeros(n, np.uint16), np.zeros(n, np.uint16), np.ones(n, np.int8))
    path = write_dsec(tmp_path / "events.h5", events)
    with open_recording(path) as rec:
        assert rec.n_events == n
    with h5py.File(path, "r+") as h5:
        table = h5["ms_to_idx"][:]
        table[20] += 7  # shifted: points inside millisecond 20
        del h5["ms_to_idx"]
        h5.create_dataset("ms_to_idx", data=table)
    with pytest.raises(CorruptFileError, match=r"'ms_to_idx' says event \d+ is the first at or after 20 ms"):
        open_recording(path)
    with h5py.File(path, "r+") as h5:
        table[20] -= 7
        table[30] = table[29] - 1  # not non-decreasing
        del h5["ms_to_idx"]
        h5.create_dataset("ms_to_idx", data=table)
    with pytest.raises(CorruptFileError, match=r"'ms_to_idx' is no non-decreasing table of event indices 0..5000"):
        open_recording(path)
    path = write_dsec(tmp_path / "b" / "events.h5", events)
    with h5py.File(path, "r+") as h5:
        del h5["events/y"]
        h5.create_dataset("events/y", data=np.zeros(n - 1, np.uint16))
    with pytest.raises(CorruptFileError, match=r"event columns must be 1-D of one length, got 'events/x' \(5000,\), "
                                               r"'events/y' \(4999,\)"):
        open_recording(path)


def test_sparse_columns_and_fifos_are_refused(tmp_path):
    import os

    import h5py
    import numpy as np
    import pytest

    from evtools.errors import CorruptFileError, InputError
    from evtools.io import open_recording

    path = tmp_path / "sparse.h5"
    with h5py.File(path, "w") as h5:
        for name, dtype in (("x", np.uint16), ("y", np.uint16), ("t", np.uint32), ("p", np.uint8)):
            h5.create_dataset(f"events/{name}", shape=(2**34,), dtype=dtype, chunks=(1 << 20,))
        h5.create_dataset("ms_to_idx", data=np.zeros(1, np.uint64))
        h5.create_dataset("t_offset", data=np.int64(0))
    with pytest.raises(CorruptFileError, match=r"'events/x' claims 17,179,869,184 events but stores almost none"):
        open_recording(path)
    fifo = tmp_path / "pipe.h5"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="is neither a regular file nor a directory"):
        open_recording(fifo)
    with pytest.raises(InputError, match="is neither a regular file nor a directory"):
        open_recording(fifo, "evh5")
