import shutil

import cv2
import numpy as np
import pytest
from cli import run_cli
from conftest import assert_same_events

from evtools.errors import CorruptFileError, MissingDatasetError
from evtools.io import open_recording
from evtools.io.writers.ess_ddd17 import write_ess_ddd17


def write_raw(root, t_ns, xyp, index, masks=None):
    """The layout written file by file, independently of evtools' writer."""
    (root / "index").mkdir(parents=True)
    np.asarray(t_ns, np.int64).tofile(root / "events.dat.t")
    np.asarray(xyp, np.int16).tofile(root / "events.dat.xyp")
    np.save(root / "index" / "index_50ms.npy", np.asarray(index, np.int64))
    for number, mask in (masks or {}).items():
        (root / "segmentation_masks").mkdir(exist_ok=True)
        cv2.imwrite(str(root / "segmentation_masks" / f"segmentation_{number:010d}.png"), np.dstack([mask] * 3))
    return root


def test_fields_rounding_and_masks(tmp_path):
    t0 = 1_487_339_175_000_000_123
    t_ns = t0 + np.array([0, 499, 500, 1_499, 1_500, 2_000_000])
    xyp = [[0, 0, 1], [345, 259, 0], [-1, 5, 1], [10, 260, 0], [3, 4, 0], [5, 6, 1]]
    index = [[t0 + 1_000_000, 5, 0], [t0 + 2_000_400, 6, 5]]
    mask = np.zeros((200, 346), np.uint8)
    mask[10:20, 30:40] = 4
    root = write_raw(tmp_path / "dir0", t_ns, xyp, index, masks={2: mask})
    with open_recording(root) as rec:
        assert (rec.format_name, rec.width, rec.height, rec.n_events) == ("ess_ddd17", 346, 260, 6)
        assert rec.t0_us == 1_487_339_175_000_000  # 123 ns rounds down
        events = rec.events()
        # -1 and y = 260 lie outside the sensor
        assert rec.dropped_outside_sensor == 2
        np.testing.assert_array_equal(events.t, [0, 0, 2, 2000])  # 499 ns -> 0 us, 1500 ns -> 2 us (half up)
        np.testing.assert_array_equal(events.x, [0, 345, 3, 5])
        np.testing.assert_array_equal(events.p, [1, -1, -1, 1])
        assert rec.frames is None
        assert len(rec.labels) == 1
        np.testing.assert_array_equal(rec.labels.t_us, [2000])  # mask 2 belongs to index row 1
        np.testing.assert_array_equal(rec.labels[0], mask)
        assert rec.index_at_time(1) == 2 and rec.index_at_time(2) == 4 and rec.index_at_time(3) == 5


def test_writer_round_trip_with_images(tmp_path, events):
    masks = {k: np.full((200, 346), k, np.uint8) for k in (1, 3)}
    images = {k: np.full((260, 346), 10 * k, np.uint8) for k in (1, 2, 3)}
    root = write_ess_ddd17(
        tmp_path / "dir1", events, t0_ns=5_000_000_000, image_t_us=np.array([100_000, 150_000, 200_000]),
        masks=masks, images=images,
    )
    with open_recording(root) as rec:
        assert_same_events(rec.events(), events)
        np.testing.assert_array_equal(rec.frames.t_us, [100_000, 150_000, 200_000])
        np.testing.assert_array_equal(rec.labels.t_us, [100_000, 200_000])
        assert rec.frames[2][0, 0] == 30 and rec.labels[1][0, 0] == 3
    index = np.load(root / "index" / "index_50ms.npy")
    np.testing.assert_array_equal(index[:, 1], np.searchsorted(events.t, [100_000, 150_000, 200_000]))
    np.testing.assert_array_equal(index[:, 2], np.searchsorted(events.t, [50_000, 100_000, 150_000]))


def test_mismatched_sizes_and_missing_files(tmp_path):
    root = write_raw(tmp_path / "d", [1, 2, 3], [[0, 0, 0]] * 2, [[1, 1, 0]])
    with pytest.raises(CorruptFileError) as err:
        open_recording(root)
    assert str(err.value) == f"{root}: events.dat.t holds 3 timestamps but events.dat.xyp has 12 bytes, not 18"
    with open(root / "events.dat.t", "ab") as t:
        t.write(b"\x01\x02")  # before, "holds 3 timestamps" and nothing about the two bytes more
    with pytest.raises(CorruptFileError) as err:
        open_recording(root)
    assert str(err.value) == f"{root}: events.dat.t has 26 bytes, not a whole number of int64 timestamps"
    (root / "events.dat.xyp").unlink()
    with pytest.raises(MissingDatasetError) as err:
        open_recording(root)
    assert str(err.value) == f"{root}: missing file 'events.dat.xyp' required by the ess_ddd17 layout"


def test_damaged_index_and_pictures_are_one_line_naming_the_file(tmp_path, events):
    # before: numpy's ValueError for an .npy (an empty one read as Ctrl-C), libpng's own message on
    # stderr before evtools' line, and pictures of another size failing when stacked
    images = {k: np.full((260, 346), 10 * k, np.uint8) for k in (1, 2, 3)}
    times = np.array([100_000, 150_000, 200_000])
    root = write_ess_ddd17(tmp_path / "d", events, t0_ns=5_000_000_000, image_t_us=times, images=images)
    index = root / "index" / "index_50ms.npy"
    for data, problem in [(b"", "unreadable index (No data left in file)"),
                          (index.read_bytes()[:-10], "unreadable index (Failed to read all data for array. Expected (3, 3) = "
                                                     "9 elements, could only read 7 elements. (file seems not fully written?))")]:
        index.write_bytes(data)
        result = run_cli("info", root)
        assert (result.returncode, result.stderr) == (2, f"error: {index}: {problem}\n")
    # an index of floats gave windows at nonsense times (all empty); a picture numbered with
    # letters was int()'s ValueError
    np.save(index, np.zeros((3, 3)))
    result = run_cli("info", root)
    assert (result.returncode, result.stderr) == (2, f"error: {index}: index of float64 (3, 3), expected (K, 3) integers\n")
    write_ess_ddd17(tmp_path / "f", events, t0_ns=5_000_000_000, image_t_us=times, images=images)
    stray = tmp_path / "f" / "imgs" / "img_copy.png"
    shutil.copy(tmp_path / "f" / "imgs" / "img_00000001.png", stray)
    result = run_cli("info", tmp_path / "f")
    assert (result.returncode, result.stderr) == (
        2, f"error: {stray}: not numbered as the layout's images are (segmentation_0000000001.png, img_0000000001.png)\n")
    write_ess_ddd17(tmp_path / "e", events, t0_ns=5_000_000_000, image_t_us=times, images=images)
    png = tmp_path / "e" / "imgs" / "img_00000002.png"
    data = bytearray(png.read_bytes())
    data[60] ^= 0x10  # inside the image data: its chunk's CRC no longer matches
    png.write_bytes(bytes(data))
    result = run_cli("convert", tmp_path / "e", "-o", tmp_path / "c")
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"error: {png}: damaged PNG image (chunk 'IDAT' at byte ") and "fails its CRC" in result.stderr
    png.write_bytes(bytes(data[:100]))
    assert read_error(png) == f"{png}: damaged PNG image (cut short before its IEND chunk)"
    cv2.imwrite(str(png), np.zeros((10, 20), np.uint8))
    with open_recording(tmp_path / "e") as rec:
        with pytest.raises(CorruptFileError, match=rf"^{png}: a 20x10 image among 346x260 ones$"):
            rec.frames[1]


def read_error(path) -> str:
    from evtools.io.images import read_grey

    with pytest.raises(CorruptFileError) as err:
        read_grey(path)
    return str(err.value)
