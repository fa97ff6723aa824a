"""--sensor-size: for formats that do not store the sensor size it replaces the reader's
assumption (events outside dropped and counted, the size stored in the cache); where the file
gives one, a different size is refused; bad values are one-line errors."""

import numpy as np
from cli import run_cli

from evtools.cache import Cache
from evtools.convert import ConvertSpec, convert
from evtools.events import Events
from evtools.io import ReadOptions, open_recording
from evtools.io.writers.dsec import write_dsec
from evtools.io.writers.evh5 import write_evh5
from evtools.windows import Every


def dsec_file(tmp_path):
    t = np.arange(0, 200_000, 100, dtype=np.int64)
    x = (np.arange(len(t)) * 7) % 640
    y = (np.arange(len(t)) * 3) % 480
    return write_dsec(tmp_path / "events.h5", Events(t, x.astype(np.uint16), y.astype(np.uint16),
                                                     np.where(np.arange(len(t)) % 2, 1, -1).astype(np.int8))), x, y


def test_a_smaller_sensor_drops_and_counts_the_events_outside(tmp_path):
    path, x, y = dsec_file(tmp_path)
    with open_recording(path, options=ReadOptions(sensor_size=(320, 240))) as rec:
        assert (rec.width, rec.height) == (320, 240)
        events = rec.read().events
        inside = (x < 320) & (y < 240)
        assert len(events) == inside.sum() and rec.dropped_outside_sensor == (~inside).sum()
    result = convert(path, tmp_path / "small", ConvertSpec(window=Every(50_000), read_options=ReadOptions(sensor_size=(320, 240))))
    cache = Cache(result.output)
    assert (cache.width, cache.height) == (320, 240) and cache.array("repr/voxel").shape[2:] == (240, 320)
    assert cache.attrs["read_options"]["sensor_size"] == [320, 240]
    assert result.dropped_outside_sensor == (~inside).sum()


def test_a_size_the_file_contradicts_is_refused_and_bad_values_are_one_line(tmp_path):
    rng = np.random.default_rng(0)
    events = Events(np.arange(10, dtype=np.int64), rng.integers(0, 64, 10).astype(np.uint16),
                    rng.integers(0, 48, 10).astype(np.uint16), np.ones(10, np.int8))
    path = write_evh5(tmp_path / "r.h5", [events], width=64, height=48)
    result = run_cli("info", path, "--sensor-size", "640x480")
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {path}: --sensor-size 640x480 contradicts the 64x48 sensor the file gives"
    assert run_cli("info", path, "--sensor-size", "64x48").returncode == 0
    result = run_cli("convert", path, "-o", tmp_path / "c", "--sensor-size", "64by48")
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: --sensor-size: '64by48' is not a sensor size WxH with sides from 1 to "
                                     "65535, such as 640x480")


def test_an_evt2_file_without_geometry_needs_and_takes_the_size(tmp_path):
    import struct

    path = tmp_path / "nogeometry.raw"
    words = [(0x8 << 28) | 5, (0x1 << 28) | (3 << 22) | (600 << 11) | 400, (0x0 << 28) | (4 << 22) | (10 << 11) | 20]
    path.write_bytes(b"% evt 2.0\n" + struct.pack("<3I", *words))
    result = run_cli("info", path)
    assert result.returncode == 2 and result.stderr.strip() == (
        f"error: {path}: the header gives no sensor geometry and no known plugin name; give it with --sensor-size WxH")
    with open_recording(path, options=ReadOptions(sensor_size=(320, 240))) as rec:
        events = rec.read().events  # the event at x 600 lies outside a 320x240 sensor
        assert (rec.width, rec.height, len(events), rec.dropped_outside_sensor) == (320, 240, 1, 1)
        assert (events.x[0], events.y[0]) == (10, 20)
