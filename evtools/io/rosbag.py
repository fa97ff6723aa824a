"""ROS1 bags of DAVIS cameras: ``dvs_msgs/EventArray`` on ``<namespace>/events``,
``sensor_msgs/Image`` on ``<namespace>/image_raw`` and ``sensor_msgs/Imu`` on ``<namespace>/imu``.
The namespace is ``/davis/<camera>`` in MVSEC's bags (``--camera left|right``); a bag that holds
one EventArray topic elsewhere, as the rpg_dvs_ros driver records (``/dvs/events``, the Event
Camera Dataset's layout), is read from that topic's namespace with the default camera.

The bag's structure (records, chunks, their bz2 or lz4 compression, the index) is read by
``rosbags``. The EventArray payloads, millions of 13-byte events, are parsed with numpy from
their ROS1 serialisation (std_msgs/Header: u32 seq, u32 secs, u32 nsecs, string frame_id; u32
height, u32 width; u32 count; then per event u16 x, u16 y, u32 secs, u32 nsecs, u8 polarity), as
are the images' headers and pixels; the tests check both against ``rosbags``' own deserialiser.
Opening reads every event message once and keeps per message only its bag time and count, so
memory does not grow with the bag; a read fetches the messages it needs through the bag index.

Event times are secs * 10^6 + nsecs / 1000 rounded half up (the DAVIS driver's nanoseconds are
whole microseconds); frames are stamped with their header's stamp (the ROS driver's image time),
on the same clock; the sensor size is the first EventArray's width and height.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from evtools.errors import CorruptFileError, InputError, MissingExtraError, first_line
from evtools.io.images import grey_from_bgr
from evtools.io.recording import ReadOptions, Recording, SignalsOnAccess, TimedImages, packets_holding

MAGIC = b"#ROSBAG V2.0\n"
CAMERAS = ("left", "right")
EVENT_DTYPE = np.dtype([("x", "<u2"), ("y", "<u2"), ("secs", "<u4"), ("nsecs", "<u4"), ("polarity", "u1")])
IMU_FIELDS = ("angular_velocity_x", "angular_velocity_y", "angular_velocity_z",
              "linear_acceleration_x", "linear_acceleration_y", "linear_acceleration_z")
# sensor_msgs/Image encodings read: {name: (channels, whether the colours are in RGB order)};
# colour frames (a colour DAVIS's) become grey by BT.601 luma, as AEDAT4 colour frames do
IMAGE_ENCODINGS = {"mono8": (1, False), "8UC1": (1, False), "bgr8": (3, False), "rgb8": (3, True),
                   "bgra8": (4, False), "rgba8": (4, True)}
EVENT_ARRAY = "dvs_msgs/msg/EventArray"


def matches(path: Path) -> bool:
    with open(path, "rb") as file:
        return file.read(len(MAGIC)) == MAGIC


def _header_end(data: bytes | memoryview) -> tuple[int, int, int]:
    """(secs, nsecs, offset after the std_msgs/Header) of a serialised message."""
    _seq, secs, nsecs, length = struct.unpack_from("<IIII", data, 0)
    return secs, nsecs, 16 + length


def parse_event_array(data: bytes | memoryview) -> tuple[np.ndarray, int, int]:
    """(events as EVENT_DTYPE, width, height) of one serialised dvs_msgs/EventArray."""
    _, _, offset = _header_end(data)
    height, width, count = struct.unpack_from("<III", data, offset)
    offset += 12
    if offset + count * EVENT_DTYPE.itemsize > len(data):
        raise ValueError(f"an EventArray of {count} events in {len(data)} bytes")
    return np.frombuffer(data, EVENT_DTYPE, count, offset), width, height


def parse_image(data: bytes | memoryview) -> tuple[int, np.ndarray]:
    """(header stamp in us, grey pixels (H, W)) of one serialised sensor_msgs/Image."""
    secs, nsecs, offset = _header_end(data)
    height, width, length = struct.unpack_from("<III", data, offset)
    encoding = bytes(data[offset + 12 : offset + 12 + length]).decode()
    offset += 12 + length
    _bigendian, step, size = struct.unpack_from("<BII", data, offset)
    offset += 9
    if encoding not in IMAGE_ENCODINGS:
        raise ValueError(f"image encoding '{encoding}' (evtools reads {', '.join(IMAGE_ENCODINGS)})")
    channels, rgb = IMAGE_ENCODINGS[encoding]
    if width == 0 or height == 0:
        raise ValueError(f"a {width}x{height} image: no pixels")
    if step < width * channels or size < step * height or offset + size > len(data):
        raise ValueError(f"a {width}x{height} {encoding} image with step {step} in {size} bytes")
    rows = np.frombuffer(data, np.uint8, step * height, offset).reshape(height, step)[:, : width * channels]
    if channels == 1:
        return _microseconds(secs, nsecs), rows
    pixels = rows.reshape(height, width, channels)
    return _microseconds(secs, nsecs), grey_from_bgr(pixels[..., [2, 1, 0]] if rgb else pixels)


def _microseconds(secs, nsecs):
    return np.asarray(secs, np.int64) * 1_000_000 + (np.asarray(nsecs, np.int64) + 500) // 1000


class RosbagRecording(Recording):
    format_name = "rosbag"
    read_options = frozenset({"camera"})

    def __init__(self, path: str | Path, options: ReadOptions = ReadOptions()):
        try:
            from rosbags.rosbag1 import Reader
        except ImportError as err:
            raise MissingExtraError("ROS bags need the rosbags package: pip install 'evtools[rosbag]'") from err
        if options.camera not in CAMERAS and not options.camera.startswith("/"):
            raise InputError(path, f"unknown camera '{options.camera}' (choose left, right or a topic namespace "
                                   "such as /dvs)")
        try:
            self._reader = Reader(path)
            self._reader.open()
        except Exception as err:  # noqa: BLE001 - rosbags meets damage with ReaderError, asserts, KeyError, ...
            raise CorruptFileError(path, f"unreadable ROS bag ({first_line(err)})") from err
        try:
            self._open(Path(path), options.camera)
        except BaseException:
            self._reader.close()
            raise

    def _connections(self, topic: str, msgtype: str) -> list:
        found = [c for c in self._reader.connections if c.topic == topic]
        wrong = [c.msgtype for c in found if c.msgtype != msgtype]
        if wrong:
            raise CorruptFileError(self.path, f"topic {topic} carries {wrong[0]}, expected {msgtype}")
        return found

    def _messages(self, connections: list, start: int | None = None):
        try:
            yield from self._reader.messages(connections=connections, start=start)
        except Exception as err:  # noqa: BLE001 - as in __init__: whatever a damaged bag makes rosbags raise
            raise CorruptFileError(self.path, f"unreadable ROS bag ({first_line(err)})") from err

    def _event_topics(self) -> list[str]:
        return sorted({c.topic for c in self._reader.connections if c.msgtype == EVENT_ARRAY})

    def _namespace(self, camera: str) -> str:
        """Where the camera's topics are: a namespace given as ``--camera /ns``, else MVSEC's
        ``/davis/<camera>``, but for the default camera the namespace of the bag's only EventArray
        topic when that is not MVSEC's (a bag of MVSEC's right camera alone is not read as left)."""
        if camera.startswith("/"):
            return camera.rstrip("/")
        mvsec = [f"/davis/{name}/events" for name in CAMERAS]
        topics = self._event_topics()
        if camera == ReadOptions.camera and len(topics) == 1 and topics[0] not in mvsec and topics[0].endswith("/events"):
            return topics[0].removesuffix("/events")
        return f"/davis/{camera}"

    def _open(self, path: Path, camera: str) -> None:
        self.path = path
        base = self._namespace(camera)
        self._events = self._connections(f"{base}/events", EVENT_ARRAY)
        if not self._events:
            topics = self._event_topics()
            found = f"EventArray topics: {', '.join(topics)}; --camera /NAMESPACE picks one" if topics else "no EventArray topic"
            raise CorruptFileError(path, f"no dvs_msgs/EventArray on {base}/events ({found})")
        bag_times, counts, width, height, t0 = [], [], 0, 0, None
        for _, bag_time, data in self._messages(self._events):
            events, width_k, height_k = self._parse(parse_event_array, data, len(bag_times))
            if not bag_times:
                width, height = width_k, height_k
            if t0 is None and len(events):
                t0 = int(_microseconds(events["secs"][0], events["nsecs"][0]))
            bag_times.append(bag_time)
            counts.append(len(events))
        if not (width > 0 and height > 0):
            raise CorruptFileError(path, f"the first EventArray gives the sensor size {width}x{height}")
        self._t0 = t0 or 0
        self._bag_times = np.array(bag_times, np.int64)
        self._starts = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])
        frames = None
        self._images = self._connections(f"{base}/image_raw", "sensor_msgs/msg/Image")
        if self._images:
            self._image_bag_times = np.array([t for _, t, _ in self._messages(self._images)], np.int64)
            if len(self._image_bag_times):
                shape = self._image(0)[1].shape
                frames = TimedImages(len(self._image_bag_times), shape, lambda i: self._image(i)[1], self._image_times)
        super().__init__(path, width=width, height=height, n_events=int(self._starts[-1]), t0_us=self._t0,
                         frames=frames, signals=self._imu(f"{base}/imu"))

    def _parse(self, parse, data, index: int):
        try:
            return parse(data)
        except (ValueError, struct.error) as err:
            raise CorruptFileError(self.path, f"message {index} of its topic: {err}") from err

    def _nth(self, connections: list, bag_times: np.ndarray, k: int):
        """Messages k, k + 1, ... of a topic, fetched through the bag's index from message k's time."""
        skip = k - int(np.searchsorted(bag_times, bag_times[k], side="left"))  # earlier ones at the same time
        for index, (_, _, data) in enumerate(self._messages(connections, start=int(bag_times[k]))):
            if index >= skip:
                yield data

    def _read_columns(self, start: int, stop: int) -> tuple[np.ndarray, ...]:
        messages, wanted = packets_holding(self._starts, start, stop)
        events = np.concatenate([self._parse(parse_event_array, data, k)[0]
                                 for k, data in zip(messages, self._nth(self._events, self._bag_times, messages.start))])[wanted]
        return (_microseconds(events["secs"], events["nsecs"]) - self._t0, events["x"], events["y"],
                events["polarity"])

    def _image(self, index: int) -> tuple[int, np.ndarray]:
        data = next(self._nth(self._images, self._image_bag_times, index))
        stamp, pixels = self._parse(parse_image, data, index)
        if index and pixels.shape != self.frames.shape:
            raise CorruptFileError(self.path, f"image {index} is {pixels.shape}, the first {self.frames.shape}")
        return stamp, pixels

    def _image_times(self) -> np.ndarray:
        stamps = [self._parse(parse_image, data, k)[0] for k, (_, _, data) in enumerate(self._messages(self._images))]
        return np.array(stamps, np.int64) - self._t0

    def _imu(self, topic: str) -> SignalsOnAccess:
        """sensor_msgs/Imu: angular velocity (rad/s) and linear acceleration (m/s^2), [relative us,
        value], read when first asked for."""
        connections = self._connections(topic, "sensor_msgs/msg/Imu")
        names = [f"imu_{name}" for name in IMU_FIELDS] if connections else []
        return SignalsOnAccess(names, lambda: self._imu_samples(topic, connections))

    def _imu_samples(self, topic: str, connections: list) -> dict[str, np.ndarray]:
        from rosbags.typesys import Stores, get_typestore

        typestore = get_typestore(Stores.ROS1_NOETIC)
        rows = []
        for k, (connection, _, data) in enumerate(self._messages(connections)):
            try:
                message = typestore.deserialize_ros1(data, connection.msgtype)
            except Exception as err:  # noqa: BLE001 - the deserialiser raises what the bytes make it raise
                raise CorruptFileError(self.path, f"message {k} of {topic}: {err}") from err
            velocity, acceleration = message.angular_velocity, message.linear_acceleration
            rows.append([int(_microseconds(message.header.stamp.sec, message.header.stamp.nanosec)) - self._t0,
                         velocity.x, velocity.y, velocity.z, acceleration.x, acceleration.y, acceleration.z])
        table = np.array(rows, np.float64).reshape(-1, 1 + len(IMU_FIELDS))
        return {f"imu_{name}": table[:, [0, 1 + i]] for i, name in enumerate(IMU_FIELDS)}

    def close(self) -> None:
        self._reader.close()
