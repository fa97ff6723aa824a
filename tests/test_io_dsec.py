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
