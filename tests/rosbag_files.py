"""DAVIS ROS bags for the tests, written by `rosbags`' own Writer and ROS1 serialiser
(dvs_msgs/EventArray, sensor_msgs/Image, sensor_msgs/Imu under MVSEC's /davis/<camera>/ or any
namespace): nothing of evtools' reader is used."""

from types import SimpleNamespace

import numpy as np
from rosbags.rosbag1 import Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

EVENT_MSG = "uint16 x\nuint16 y\ntime ts\nbool polarity\n"
EVENT_ARRAY_MSG = "std_msgs/Header header\nuint32 height\nuint32 width\ndvs_msgs/Event[] events\n"
T0_S = 1_506_117_000  # MVSEC's outdoor_day seconds


def typestore():
    store = get_typestore(Stores.ROS1_NOETIC)
    store.register(get_types_from_msg(EVENT_MSG, "dvs_msgs/msg/Event"))
    store.register(get_types_from_msg(EVENT_ARRAY_MSG, "dvs_msgs/msg/EventArray"))
    return store


def mvsec_bag(n_messages=30, seed=0):
    """Per camera: event messages of 10 ms (200-400 events), an image every 50 ms, IMU every 5 ms."""
    rng = np.random.default_rng(seed)
    bag = SimpleNamespace(events=[], images=[], imus=[])
    for m in range(n_messages):
        n = int(rng.integers(200, 400))
        us = np.sort(rng.integers(m * 10_000, (m + 1) * 10_000, n))
        bag.events.append(np.rec.fromarrays([rng.integers(0, 346, n), rng.integers(0, 260, n), T0_S + us // 1_000_000,
                                             us % 1_000_000 * 1000, rng.integers(0, 2, n)], names="x,y,secs,nsecs,p"))
        if m % 5 == 4:
            bag.images.append(((m + 1) * 10_000 - 300, rng.integers(0, 256, (260, 346), dtype=np.uint8)))
        if m % 2 == 0:
            bag.imus.append((m * 10_000 + 17, rng.normal(size=6)))
    return bag


def stamp(store, us):
    return store.types["builtin_interfaces/msg/Time"](sec=T0_S + us // 1_000_000, nanosec=us % 1_000_000 * 1000)


def header(store, us, seq=0):
    return store.types["std_msgs/msg/Header"](seq=seq, stamp=stamp(store, us), frame_id="davis")


def write_bag(path, bag, camera="left", compression=None, other_camera=True, namespaces=None):
    """MVSEC's topics for ``camera`` (and the other camera's, whose x are one less), or, with
    ``namespaces``, the same topics under each of them (the first with ``bag``'s x, the others
    one less), as rpg_dvs_ros records them under /dvs."""
    store = typestore()
    types = store.types
    writer = Writer(path)
    if compression:
        writer.set_compression(getattr(Writer.CompressionFormat, compression))
    with writer:
        cameras = [camera] + ([c for c in ("left", "right") if c != camera] if other_camera else [])
        for index, base in enumerate(namespaces or [f"/davis/{cam}" for cam in cameras]):
            events = writer.add_connection(f"{base}/events", "dvs_msgs/msg/EventArray", typestore=store)
            images = writer.add_connection(f"{base}/image_raw", "sensor_msgs/msg/Image", typestore=store)
            imu = writer.add_connection(f"{base}/imu", "sensor_msgs/msg/Imu", typestore=store)
            shift = 0 if index == 0 else 1  # another camera's events differ
            messages = []
            for k, e in enumerate(bag.events):
                us = int((e.secs[-1] - T0_S) * 1_000_000 + e.nsecs[-1] // 1000)
                message = types["dvs_msgs/msg/EventArray"](header=header(store, us, k), height=260, width=346, events=[
                    types["dvs_msgs/msg/Event"](x=int(x) - shift * (x > 0), y=int(y),
                                                ts=types["builtin_interfaces/msg/Time"](sec=int(s), nanosec=int(ns)),
                                                polarity=bool(p))
                    for x, y, s, ns, p in zip(e.x, e.y, e.secs, e.nsecs, e.p)])
                messages.append((us * 1000 + 5_000, events, message))  # received 5 us after the last event
            for us, pixels in bag.images:
                message = types["sensor_msgs/msg/Image"](header=header(store, us), height=260, width=346, encoding="mono8",
                                                         is_bigendian=0, step=346, data=pixels.reshape(-1))
                messages.append((us * 1000 + 2_000_000, images, message))
            for us, values in bag.imus:
                v3 = types["geometry_msgs/msg/Vector3"]
                message = types["sensor_msgs/msg/Imu"](
                    header=header(store, us), orientation=types["geometry_msgs/msg/Quaternion"](x=0, y=0, z=0, w=1),
                    orientation_covariance=np.zeros(9), angular_velocity=v3(x=values[0], y=values[1], z=values[2]),
                    angular_velocity_covariance=np.zeros(9),
                    linear_acceleration=v3(x=values[3], y=values[4], z=values[5]),
                    linear_acceleration_covariance=np.zeros(9))
                messages.append((us * 1000 + 1000, imu, message))
            for time_ns, connection, message in sorted(messages, key=lambda m: m[0]):
                writer.write(connection, T0_S * 10**9 + time_ns, store.serialize_ros1(message, connection.msgtype))
    return path


def event_columns(bag):
    e = np.concatenate([np.asarray(m.tolist(), np.int64) for m in bag.events])
    t = (e[:, 2] * 1_000_000 + e[:, 3] // 1000)
    return t, e[:, 0], e[:, 1], e[:, 4]
