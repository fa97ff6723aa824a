import av
import cv2
import numpy as np
import pytest
import zarr
from cli import run_cli

from evtools.cache import Cache
from evtools.convert import ConvertSpec, convert
from evtools.errors import EvtoolsError
from evtools.events import Events
from evtools.io.images import write_picture
from evtools.io.writers.evh5 import write_evh5
from evtools.labels import CLASS_COLOURS
from evtools.render import GAP, TITLE_HEIGHT, VISIBLE, events_picture, labels_picture, legend, render_window
from evtools.representations import EvImage, EvSegNet, Histogram, TimeSurface, VoxelGrid


@pytest.fixture
def cache(tmp_path):
    # two positive events at (x=2, y=1), one negative at (x=5, y=3), before the frame at t = 100
    events = Events(np.array([10, 20, 30], np.int64), np.array([2, 2, 5], np.uint16), np.array([1, 1, 3], np.uint16),
                    np.array([1, 1, -1], np.int8))
    frame = np.full((1, 4, 8), 77, np.uint8)
    path = write_evh5(tmp_path / "r.h5", [events], width=8, height=4, frames=frame, frames_t_us=np.array([100]))
    return Cache(convert(path, tmp_path / "c", ConvertSpec(representations=(VoxelGrid(bins=2), EvImage()))).output)


def test_window_picture_layout_and_colours(cache):
    picture = render_window(cache, 0, "evimage")
    strip = legend(8 + GAP + 8, labelled=False)
    assert picture.shape == (4 + TITLE_HEIGHT + strip.shape[0], 8 + GAP + 8, 3)
    np.testing.assert_array_equal(picture[4 + TITLE_HEIGHT :], strip)
    events = picture[TITLE_HEIGHT : TITLE_HEIGHT + 4, :8]
    np.testing.assert_array_equal(events[1, 2], [0, 0, 255])  # positive: red (BGR)
    np.testing.assert_array_equal(events[3, 5], [255, 0, 0])  # negative: blue
    assert events.sum() == 2 * 255
    np.testing.assert_array_equal(picture[TITLE_HEIGHT : TITLE_HEIGHT + 4, 8 + GAP :], np.full((4, 8, 3), 77))


def test_faint_activity_stays_visible():
    positive = np.zeros((4, 4), np.float32)
    positive[0, 0], positive[1, 1], positive[2, 2] = 100, 1, 2  # one busy pixel, two of single events
    picture = events_picture(positive, np.zeros_like(positive))
    red = picture[..., 2]
    assert red[1, 1] >= VISIBLE and red[2, 2] > red[1, 1] and red[0, 0] == 255
    assert (red > 0).sum() == 3 and picture[..., :2].sum() == 0


def test_pseudo_labels_and_ground_truth_are_drawn_with_a_legend(cache):
    group = zarr.open_group(cache.path, mode="r+")
    labels = np.zeros((1, 4, 8), np.uint8)
    labels[0, :, 4:] = 5  # vehicle on the right half
    truth = np.full((1, 4, 8), 255, np.uint8)  # ignored everywhere but one pixel
    truth[0, 0, 0] = 1
    group.create_array("labels", data=labels)
    group.create_array("gt_labels", data=truth)
    picture = render_window(Cache(cache.path), 0, "evimage")
    panel = 8 + GAP
    pseudo = picture[TITLE_HEIGHT : TITLE_HEIGHT + 4, 2 * panel : 2 * panel + 8]
    np.testing.assert_array_equal(pseudo[:, 4:], np.broadcast_to(CLASS_COLOURS[5], (4, 4, 3)))
    gt = picture[TITLE_HEIGHT : TITLE_HEIGHT + 4, 3 * panel : 3 * panel + 8]
    np.testing.assert_array_equal(gt[0, 0], CLASS_COLOURS[1])
    assert picture.shape[1] == 4 * 8 + 3 * GAP
    np.testing.assert_array_equal(picture[TITLE_HEIGHT + 4 :], legend(picture.shape[1], labelled=True))


def test_activity_maps_of_each_representation():
    voxel = np.array([[[1.0, -2.0]], [[0.5, 0.0]]], np.float32)  # 2 bins, 1 x 2 pixels
    pos, neg = VoxelGrid(bins=2).activity(voxel)
    np.testing.assert_array_equal(pos, [[1.5, 0.0]])
    np.testing.assert_array_equal(neg, [[0.0, 2.0]])
    separate = np.array([[[1.0]], [[2.0]], [[4.0]], [[8.0]]], np.float32)  # positive bins, then negative
    assert [m[0, 0] for m in VoxelGrid(bins=2, separate_polarity=True).activity(separate)] == [3.0, 12.0]
    histogram = np.array([[[3]], [[1]], [[5]], [[0]]], np.uint8)  # negative bins first
    pos, neg = Histogram(bins=2).activity(histogram)
    assert (pos[0, 0], neg[0, 0]) == (5, 4)
    evsegnet = np.arange(6, dtype=np.float32).reshape(6, 1, 1)  # counts in channels 0 and 3
    assert [m[0, 0] for m in EvSegNet().activity(evsegnet)] == [0.0, 3.0]
    for rep in (EvImage(), TimeSurface()):
        assert [m[0, 0] for m in rep.activity(np.array([[[0.25]], [[0.75]]], np.float32))] == [0.25, 0.75]


def test_labels_picture():
    picture = labels_picture(np.array([[0, 5, 255]], np.uint8))
    np.testing.assert_array_equal(picture[0], [CLASS_COLOURS[0], CLASS_COLOURS[5], [0, 0, 0]])


def test_cli_picture_and_videos(cache, tmp_path):
    result = run_cli("render", cache.path, "--index", "0", "--repr", "voxel", "-o", tmp_path / "w.png")
    assert result.returncode == 0, result.stderr
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "w.png")), render_window(cache, 0, "voxel"))
    for suffix in ("gif", "mp4"):
        result = run_cli("render", cache.path, "-o", tmp_path / f"v.{suffix}")
        assert result.returncode == 0, result.stderr
        assert (tmp_path / f"v.{suffix}").stat().st_size > 0
    # H.264 in yuv420p, the sides padded to even numbers: what browsers, Jupyter and VS Code play
    with av.open(str(tmp_path / "v.mp4")) as video:
        stream = video.streams.video[0]
        assert (stream.codec_context.name, stream.codec_context.pix_fmt) == ("h264", "yuv420p")
        frames = [frame.to_ndarray(format="bgr24") for frame in video.decode(stream)]
    expected = render_window(cache, 0)
    assert len(frames) == 1 and frames[0].shape == (expected.shape[0] + expected.shape[0] % 2, expected.shape[1] + expected.shape[1] % 2, 3)
    result = run_cli("render", cache.path, "-o", tmp_path / "v.avi")
    assert result.returncode == 2 and result.stderr.strip().startswith("error: --output: '.avi' is no picture or video type evtools writes (known: .png")


def test_pictures_are_written_as_opencv_writes_them_and_failures_are_errors(cache, tmp_path):
    # cv2.imwrite answers a full disk or an unwritable folder with False, silently
    picture = render_window(cache, 0)
    assert write_picture(tmp_path / "w.png", picture) == tmp_path / "w.png"
    assert cv2.imwrite(str(tmp_path / "cv.png"), picture)
    assert (tmp_path / "w.png").read_bytes() == (tmp_path / "cv.png").read_bytes()
    with pytest.raises(FileNotFoundError):
        write_picture(tmp_path / "absent" / "w.png", picture)
    with pytest.raises(EvtoolsError, match=f"^{tmp_path}/w.xyz: OpenCV could not write this image format$"):
        write_picture(tmp_path / "w.xyz", picture)
    assert not (tmp_path / "w.xyz").exists()


def test_out_of_range_window(cache):
    with pytest.raises(EvtoolsError) as err:
        render_window(cache, 3)
    assert str(err.value) == f"{cache.path}: window 3 out of range (the cache has 1 windows)"


def test_info_on_a_cache(cache):
    result = run_cli("info", "--json", cache.path)
    assert result.returncode == 0, result.stderr
    import json

    summary = json.loads(result.stdout)
    assert summary["n_windows"] == 1 and summary["n_events"] == 3 and summary["has_aps"]
    assert summary["representations"]["voxel"] == {
        "shape": [1, 2, 4, 8], "dtype": "float32", "params": {"bins": 2, "normalize": False, "separate_polarity": False}
    }
    assert summary["window"] == {"mode": "window", "duration_us": 50000}
