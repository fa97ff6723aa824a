"""The ROS bag reader on bags written by `rosbags`' own Writer and serialiser, in MVSEC's layout
(dvs_msgs/EventArray, sensor_msgs/Image, sensor_msgs/Imu under /davis/<camera>/), every field
checked against the messages as built; compressed chunks; both cameras; damage; conversion."""

import numpy as np
import pytest
from cli import run_cli
from conftest import damage_outcomes
from rosbag_files import T0_S, event_columns, mvsec_bag, typestore, write_bag

from evtools.cache import Cache
from evtools.errors import CorruptFileError
from evtools.io import ReadOptions, detect_format, open_recording
from evtools.io.rosbag import parse_event_array, parse_image
from evtools.representations import VoxelGrid

@pytest.mark.parametrize("compression", [None, "BZ2", "LZ4"])
def test_every_field_of_a_written_bag(tmp_path, compression, monkeypatch):
    bag = mvsec_bag()
    path = write_bag(tmp_path / "outdoor_day1.bag", bag, compression=compression)
    t, x, y, p = event_columns(bag)
    assert detect_format(path) == "rosbag"
    from evtools.io.rosbag import RosbagRecording

    imu_reads, read_imu = [], RosbagRecording._imu_samples
    monkeypatch.setattr(RosbagRecording, "_imu_samples", lambda rec, *args: imu_reads.append(1) or read_imu(rec, *args))
    with open_recording(path) as rec:
        assert imu_reads == []  # the IMU messages are deserialised when a signal is first asked for, once
        assert (rec.format_name, rec.width, rec.height, rec.n_events, rec.t0_us) == ("rosbag", 346, 260, len(t), t[0])
        events = rec.read().events
        np.testing.assert_array_equal(events.t, t - t[0])
        np.testing.assert_array_equal(events.x, x)
        np.testing.assert_array_equal(events.y, y)
        np.testing.assert_array_equal(events.p, np.where(p == 1, 1, -1))
        # any index range, across message boundaries
        part = rec.read(250, 1_234).events
        np.testing.assert_array_equal(part.t, (t - t[0])[250:1_234])
        assert len(rec.frames) == 6 and rec.frames.shape == (260, 346)
        np.testing.assert_array_equal(rec.frames.t_us, [T0_S * 1_000_000 + us - t[0] for us, _ in bag.images])
        for k, (_, pixels) in enumerate(bag.images):
            np.testing.assert_array_equal(rec.frames[k], pixels)
        gyro_y, accel_z = rec.signals["imu_angular_velocity_y"], rec.signals["imu_linear_acceleration_z"]
        assert len(gyro_y) == 15 and imu_reads == [1]
        np.testing.assert_array_equal(gyro_y[:, 0], [T0_S * 1_000_000 + us - t[0] for us, _ in bag.imus])
        np.testing.assert_array_equal(gyro_y[:, 1], [v[1] for _, v in bag.imus])
        np.testing.assert_array_equal(accel_z[:, 1], [v[5] for _, v in bag.imus])


def test_the_right_camera(tmp_path):
    bag = mvsec_bag(n_messages=5)
    path = write_bag(tmp_path / "r.bag", bag, camera="right")
    _, x, _, _ = event_columns(bag)
    with open_recording(path, options=ReadOptions(camera="right")) as rec:
        np.testing.assert_array_equal(rec.read().events.x, x)
    with open_recording(path, options=ReadOptions(camera="left")) as rec:
        np.testing.assert_array_equal(rec.read().events.x, x - (x > 0))
    alone = write_bag(tmp_path / "alone.bag", bag, camera="right", other_camera=False)
    with pytest.raises(CorruptFileError, match=r"no dvs_msgs/EventArray on /davis/left/events \(EventArray topics: "
                                               r"/davis/right/events; --camera /NAMESPACE picks one\)$"):
        open_recording(alone)  # the default camera is MVSEC's left, not the bag's only camera


def test_a_bag_with_one_event_topic_elsewhere_is_read_from_its_namespace(tmp_path):
    bag = mvsec_bag(n_messages=10)
    t, x, _, _ = event_columns(bag)
    path = write_bag(tmp_path / "shapes.bag", bag, namespaces=["/dvs"])  # rpg_dvs_ros's topics
    with open_recording(path) as rec:
        np.testing.assert_array_equal(rec.read().events.x, x)
        assert len(rec.frames) == 2 and len(rec.signals["imu_angular_velocity_x"]) == 5
        np.testing.assert_array_equal(rec.frames[1], bag.images[1][1])
    with pytest.raises(CorruptFileError, match=r"no dvs_msgs/EventArray on /davis/right/events \(EventArray "
                                               r"topics: /dvs/events; --camera /NAMESPACE picks one\)$"):
        open_recording(path, options=ReadOptions(camera="right"))  # a camera named is MVSEC's


def test_camera_names_a_namespace_among_several(tmp_path):
    bag = mvsec_bag(n_messages=5)
    _, x, _, _ = event_columns(bag)
    path = write_bag(tmp_path / "stereo.bag", bag, namespaces=["/cam0", "/cam1"])
    with pytest.raises(CorruptFileError, match=r"on /davis/left/events \(EventArray topics: /cam0/events, "
                                               r"/cam1/events; --camera /NAMESPACE picks one\)$"):
        open_recording(path)
    for camera, expected in (("/cam0", x), ("/cam1/", x - (x > 0))):
        with open_recording(path, options=ReadOptions(camera=camera)) as rec:
            np.testing.assert_array_equal(rec.read().events.x, expected)
    result = run_cli("info", path, "--camera", "/cam1")
    assert result.returncode == 0 and "/cam1" not in result.stderr, result.stderr
    result = run_cli("info", path, "--camera", "middle")
    assert (result.returncode, result.stderr) == (2, f"error: {path}: unknown camera 'middle' (choose left, right or a "
                                                     "topic namespace such as /dvs)\n")


def test_the_numpy_parsers_equal_the_rosbags_deserialiser(tmp_path):
    store = typestore()
    bag = mvsec_bag(n_messages=2)
    path = write_bag(tmp_path / "p.bag", bag, other_camera=False)
    from rosbags.rosbag1 import Reader

    with Reader(path) as reader:
        for connection, _, data in reader.messages():
            message = store.deserialize_ros1(data, connection.msgtype)
            if connection.msgtype == "dvs_msgs/msg/EventArray":
                events, width, height = parse_event_array(data)
                assert (width, height) == (message.width, message.height)
                assert [(e.x, e.y, e.ts.sec, e.ts.nanosec, e.polarity) for e in message.events] == [
                    (int(a), int(b), int(c), int(d), bool(f)) for a, b, c, d, f in events.tolist()]
            elif connection.msgtype == "sensor_msgs/msg/Image":
                stamp_us, pixels = parse_image(data)
                assert stamp_us == message.header.stamp.sec * 1_000_000 + message.header.stamp.nanosec // 1000
                np.testing.assert_array_equal(pixels.reshape(-1), message.data)


def serialised_image(encoding: str, pixels: np.ndarray, step: int | None = None) -> bytes:
    """A sensor_msgs/Image of (H, W, C) uint8 ``pixels``, serialised by rosbags."""
    store = typestore()
    height, width = pixels.shape[:2]
    rows = pixels.reshape(height, width * pixels.shape[2])
    step = step or rows.shape[1]
    data = np.zeros((height, step), np.uint8)
    data[:, : rows.shape[1]] = rows
    message = store.types["sensor_msgs/msg/Image"](
        header=store.types["std_msgs/msg/Header"](seq=0, stamp=store.types["builtin_interfaces/msg/Time"](sec=T0_S, nanosec=0),
                                                  frame_id="davis"),
        height=height, width=width, encoding=encoding, is_bigendian=0, step=step, data=data.reshape(-1))
    return bytes(store.serialize_ros1(message, "sensor_msgs/msg/Image"))


def test_colour_images_become_grey_and_others_are_refused():
    # a colour DAVIS's frames: before, refused ("evtools reads mono8, 8UC1")
    bgr = np.zeros((2, 3, 3), np.uint8)
    bgr[0, 0] = (255, 0, 0)  # blue
    bgr[1, 2] = (0, 0, 200)  # red
    bgr[0, 1] = (0, 100, 0)  # green
    expected = np.array([[29, 59, 0], [0, 0, 60]], np.uint8)  # 0.114 * 255, 0.587 * 100, 0.299 * 200, rounded
    for encoding, pixels in (("bgr8", bgr), ("rgb8", bgr[..., ::-1]), ("bgra8", np.dstack([bgr, np.full((2, 3), 7, np.uint8)])),
                             ("rgba8", np.dstack([bgr[..., ::-1], np.full((2, 3), 7, np.uint8)]))):
        for step in (None, 16):  # rows padded to 16 bytes too
            _, grey = parse_image(serialised_image(encoding, pixels, step))
            np.testing.assert_array_equal(grey, expected, err_msg=f"{encoding} step {step}")
    for encoding, pixels, problem in (
            ("mono16", np.zeros((2, 3, 2), np.uint8), "image encoding 'mono16' (evtools reads mono8, 8UC1, bgr8, rgb8, bgra8, rgba8)"),
            ("bgr8", np.zeros((0, 0, 3), np.uint8), "a 0x0 image: no pixels"),  # before, a frame of no pixels was taken
            ("bgr8", np.zeros((2, 3, 1), np.uint8), "a 3x2 bgr8 image with step 3 in 6 bytes")):
        with pytest.raises(ValueError) as refused:
            parse_image(serialised_image(encoding, pixels))
        assert str(refused.value) == problem


def test_bad_bags_are_one_line_errors(tmp_path):
    path = write_bag(tmp_path / "b.bag", mvsec_bag(n_messages=3), other_camera=False)
    with pytest.raises(CorruptFileError, match=r"no dvs_msgs/EventArray on /davis/right/events \(EventArray topics: "
                                               r"/davis/left/events; --camera /NAMESPACE picks one\)$"):
        open_recording(path, options=ReadOptions(camera="right"))
    data = path.read_bytes()
    (tmp_path / "cut.bag").write_bytes(data[: len(data) // 2])
    result = run_cli("info", tmp_path / "cut.bag")
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "cut.bag" in result.stderr


def test_convert_a_bag_end_to_end(tmp_path):
    bag = mvsec_bag()
    path = write_bag(tmp_path / "outdoor_day1.bag", bag)
    result = run_cli("convert", path, "-o", tmp_path / "day", "--repr", "voxel", "--window", "20ms")
    assert result.returncode == 0, result.stderr
    cache = Cache(tmp_path / "day.zarr")
    t, x, y, p = event_columns(bag)
    t = t - t[0]
    assert len(cache) == 6
    for k, (us, pixels) in enumerate(bag.images):
        end = T0_S * 1_000_000 + us - (event_columns(bag)[0][0])
        inside = (t >= end - 20_000) & (t < end)
        np.testing.assert_array_equal(cache.array("repr/voxel")[k],
                                      VoxelGrid()(t[inside], x[inside], y[inside], np.where(p[inside] == 1, 1, -1), 346, 260))
        np.testing.assert_array_equal(cache.array("aps")[k], pixels)


def test_damaged_bytes_anywhere_give_a_result_or_one_line(tmp_path):
    data = write_bag(tmp_path / "whole.bag", mvsec_bag(n_messages=3), other_camera=False).read_bytes()
    # after the magic, every 29th byte
    assert damage_outcomes(data, range(13, len(data), 29), 0x5A, tmp_path / "damaged.bag") == {"read", "one line"}
