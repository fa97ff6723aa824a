"""iniVation AEDAT4 files (DV software; DAVIS346, DVXplorer and kin), decoded packet by packet.

Layout (dv-processing's format, the schemas of neuromorphicsystems/aedat's flatbuffers/*.fbs):
``#!AER-DAT4.0\\r\\n``; a u32 length and the IOHeader FlatBuffer (compression: 0 none, 1 LZ4,
2 LZ4 high, 3 Zstd, 4 Zstd high; the position of the trailing data table, or -1; the description,
an XML tree whose ``outInfo`` node lists the streams: id, ``typeIdentifier`` EVTS, FRME, IMUS or
TRIG, and for events and frames ``info/sizeX`` and ``sizeY``); then packets, each a u32 stream id,
a u32 length and that many bytes: a size-prefixed FlatBuffer carrying the stream's identifier,
compressed whole (an LZ4 frame or a Zstd frame) when the header says so.

The packets are decoded here (a FlatBuffer reader of a few lines, lz4 and zstandard for the
frames), not by the ``aedat`` package, which the tests use as the reference: ``aedat`` reads
forward only, and conversion needs any block of events and any frame by index, after a resume
too. Opening scans the packets once, keeping per packet only its place and its count, so memory
does not grow with the file; the counts come from the data table that DV writes at the end of a
file when it lists exactly these packets (else each packet is decoded once to count it), and a
read decodes the packets it touches.
A truncated last packet (a recording cut off) is left out and counted in ``truncated_packets``.

Frames are stamped with the end of their exposure (the frame timestamp when no exposure is
recorded): the image's content is settled then, so a window ending at that time holds every
event of the interval the image integrates. Colour frames are turned grey (ITU-R BT.601 luma);
a frame smaller than its stream (a region of interest) is placed at its offset in a black image.

A file may hold several event streams (a stereo rig's two cameras, a filter's output recorded
beside the camera's): ``--camera`` then names one by its camera (the stream's ``info/source``),
its ``originalModuleName/originalOutputName`` or its id, and the frames, IMU samples and
triggers read are those of the same camera (source), and where there are several of a kind,
those of the events' module (the camera's APS frames, not an accumulator's event frames).
"""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ElementTree
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evtools.errors import CorruptFileError, EvtoolsError, InputError, MissingExtraError, first_line
from evtools.io.images import grey_from_bgr
from evtools.io.recording import ReadOptions, Recording, SignalsOnAccess, TimedImages, packets_holding

MAGIC = b"#!AER-DAT4.0\r\n"
COMPRESSIONS = {0: None, 1: "lz4", 2: "lz4", 3: "zstd", 4: "zstd"}
EVENT_DTYPE = np.dtype({"names": ["t", "x", "y", "on"], "formats": ["<i8", "<i2", "<i2", "u1"],
                        "offsets": [0, 8, 10, 12], "itemsize": 16})  # a FlatBuffers struct, 8-aligned
IMU_FIELDS = ("temperature", "accelerometer_x", "accelerometer_y", "accelerometer_z", "gyroscope_x",
              "gyroscope_y", "gyroscope_z", "magnetometer_x", "magnetometer_y", "magnetometer_z")
TRIGGER_SOURCES = ("timestamp_reset", "external_signal_rising_edge", "external_signal_falling_edge",
                   "external_signal_pulse", "external_generator_rising_edge", "external_generator_falling_edge",
                   "frame_begin", "frame_end", "exposure_begin", "exposure_end")
FRAME_CHANNELS = {0: 1, 16: 3, 24: 4}  # Gray, Bgr, Bgra


def matches(path: Path) -> bool:
    with open(path, "rb") as file:
        return file.read(len(MAGIC)) == MAGIC


@dataclass(frozen=True)
class Stream:
    id: int
    kind: str  # EVTS, FRME, IMUS, TRIG
    width: int = 0
    height: int = 0
    source: str = ""  # info/source: the camera, as DV names it (DAVIS346_00000499)
    module: str = ""  # originalModuleName: what produced it (capture, accumulator, ...)
    output: str = ""  # originalOutputName: which of the module's outputs (events, frames, ...)

    @property
    def recorded_from(self) -> str:
        return "/".join(filter(None, (self.module, self.output)))

    @property
    def names(self) -> tuple[str, ...]:
        """What --camera may call it: its camera, its module/output, its id."""
        return tuple(name for name in (self.source, self.recorded_from, str(self.id)) if name)


class _Table:
    """One FlatBuffers table in ``buffer`` at ``position``, every read bounds-checked."""

    def __init__(self, buffer: bytes, position: int):
        self.buffer = buffer
        self.position = position
        vtable = position - self._unpack("<i", position)
        self.vtable, self.vtable_size = vtable, self._unpack("<H", vtable)

    def _unpack(self, fmt: str, position: int):
        if not 0 <= position <= len(self.buffer) - struct.calcsize(fmt):
            raise ValueError(f"offset {position} outside the {len(self.buffer)}-byte FlatBuffer")
        return struct.unpack_from(fmt, self.buffer, position)[0]

    def _field(self, index: int) -> int:
        """The field's position in the buffer, or 0 when absent (its default then applies)."""
        entry = 4 + 2 * index
        offset = self._unpack("<H", self.vtable + entry) if entry < self.vtable_size else 0
        return self.position + offset if offset else 0

    def scalar(self, index: int, fmt: str, default=0):
        position = self._field(index)
        return self._unpack(fmt, position) if position else default

    def vector(self, index: int, item_size: int) -> tuple[int, int]:
        """(position of the first item, item count) of a vector field; (0, 0) when absent."""
        position = self._field(index)
        if not position:
            return 0, 0
        start = position + self._unpack("<I", position)
        count = self._unpack("<I", start)
        if start + 4 + count * item_size > len(self.buffer):
            raise ValueError(f"a vector of {count} items runs past the {len(self.buffer)}-byte FlatBuffer")
        return start + 4, count

    def tables(self, index: int) -> list[_Table]:
        """A vector of tables (offsets to each)."""
        first, count = self.vector(index, 4)
        return [_Table(self.buffer, first + 4 * i + self._unpack("<I", first + 4 * i)) for i in range(count)]


def _root(buffer: bytes, identifier: str, size_prefixed: bool = True) -> _Table:
    base = 4 if size_prefixed else 0
    if len(buffer) < base + 8 or buffer[base + 4 : base + 8] != identifier.encode():
        found = buffer[base + 4 : base + 8]
        raise ValueError(f"expected a FlatBuffer '{identifier}', found {found!r}")
    return _Table(buffer, base + struct.unpack_from("<I", buffer, base)[0])


def _decompressor(kind: str | None):
    """Bytes -> bytes for the file's compression (lz4 and zstandard are imported when needed)."""
    if kind is None:
        return bytes
    try:
        if kind == "lz4":
            import lz4.frame

            return lz4.frame.decompress
        import zstandard
    except ImportError as err:
        raise MissingExtraError(f"AEDAT4 files compressed with {kind} need the {err.name} package: "
                                "pip install 'evtools[aedat4]'") from err
    # a decompressobj: DV writes Zstd frames without their content size
    return lambda data: zstandard.ZstdDecompressor().decompressobj().decompress(data)


@dataclass
class _Packets:
    """The packets of one stream: where each one's payload starts in the file, and its length."""

    offsets: list[int]
    lengths: list[int]


class Aedat4Recording(Recording):
    format_name = "aedat4"
    read_options = frozenset({"camera"})

    def __init__(self, path: str | Path, options: ReadOptions = ReadOptions()):
        self._file = open(path, "rb")
        try:
            self._open(Path(path), options.camera)
        except BaseException:
            self._file.close()
            raise

    def _open(self, path: Path, camera: str) -> None:
        self.path = path
        file = self._file
        if file.read(len(MAGIC)) != MAGIC:
            raise CorruptFileError(path, "not an AEDAT4 file (no '#!AER-DAT4.0' header)")
        try:
            (length,) = struct.unpack("<I", file.read(4))
            header = _root(file.read(length), "IOHE", size_prefixed=False)
            compression = header.scalar(0, "<i", 0)
            data_table = header.scalar(1, "<q", -1)
            start, size = header.vector(2, 1)
            description = header.buffer[start : start + size].decode()
        except (struct.error, ValueError, UnicodeDecodeError) as err:
            raise CorruptFileError(path, f"damaged AEDAT4 header ({err})") from err
        if compression not in COMPRESSIONS:
            raise CorruptFileError(path, f"unknown AEDAT4 compression {compression}")
        self.compression = COMPRESSIONS[compression]
        self._decompress = _decompressor(self.compression)
        self.streams = _streams(path, description)
        events = _event_stream(path, self.streams, camera)
        packets = self._scan(data_table)
        self._companions = _companions(self.streams, events, packets)
        frames = self._companions.get("FRME")
        self._event_packets = packets.get(events.id, _Packets([], []))
        counts = self._table_counts(data_table, events.id)
        if counts is None:  # no data table, or one that does not describe these packets
            counts = [len(self._event_elements(k)) for k in range(len(self._event_packets.offsets))]
        self._starts = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])
        n_events = int(self._starts[-1])
        first = next((k for k, count in enumerate(counts) if count), None)
        self._t0 = t0 = 0 if first is None else int(self._counted_elements(first)["t"][0])
        frame_images = None
        if frames is not None:
            self._frame_packets = packets[frames.id]
            self._frame_shape = (frames.height, frames.width)
            frame_images = TimedImages(len(self._frame_packets.offsets), self._frame_shape, self._frame,
                                       self._frame_times)
        super().__init__(path, width=events.width, height=events.height, n_events=n_events, t0_us=t0,
                         frames=frame_images, signals=self._signals(packets))

    def _scan(self, data_table: int) -> dict[int, _Packets]:
        """Every whole packet's place, by stream; a truncated last packet is counted, not kept."""
        file = self._file
        end = file.seek(0, 2)
        if data_table >= 0:
            end = min(end, data_table)
        position = file.seek(len(MAGIC) + 4 + struct.unpack("<I", _pread(file, len(MAGIC), 4))[0])
        packets: dict[int, _Packets] = {}
        self.truncated_packets = 0
        while position < end:
            head = _pread(file, position, 8)
            stream, length = struct.unpack("<II", head) if len(head) == 8 else (None, 0)
            if stream is None or position + 8 + length > end:
                self.truncated_packets += 1
                break
            if stream not in self.streams:
                raise CorruptFileError(self.path, f"packet at byte {position} names stream {stream}, which the "
                                                  "header does not describe")
            entry = packets.setdefault(stream, _Packets([], []))
            entry.offsets.append(position + 8)
            entry.lengths.append(length)
            position += 8 + length
        return packets

    @contextmanager
    def _packet(self, packets: _Packets, k: int, kind: str):
        """Packet k of a stream as its FlatBuffer; any failure to decode it or to read what it
        holds (lz4, zstandard and the FlatBuffer each raise their own) is one line."""
        try:
            yield _root(self._decompress(_pread(self._file, packets.offsets[k], packets.lengths[k])), kind)
        except EvtoolsError:
            raise
        except Exception as err:  # noqa: BLE001 - see above
            raise CorruptFileError(self.path, f"damaged {kind} packet at byte {packets.offsets[k] - 8} "
                                              f"({first_line(err)})") from err

    def _table_counts(self, data_table: int, stream_id: int) -> list[int] | None:
        """The event packets' counts from the data table that DV writes at the end of a file (a
        FileDataTable, FTAB: per packet its payload's byte offset, its stream and size, its count
        of elements and its first and last time), so that opening decodes no packet but the first;
        None when there is no table or its event entries are not exactly the packets found
        (the packets are then counted by decoding them). A packet that holds another count than
        its entry says is refused when it is read."""
        if data_table < 0:
            return None
        try:
            size = self._file.seek(0, 2) - data_table
            table = _root(self._decompress(_pread(self._file, data_table, size)), "FTAB")
            entries = [(entry.scalar(0, "<q", 0), entry.scalar(2, "<q", 0)) for entry in table.tables(0)
                       if entry.scalar(1, "<i", 0) == stream_id]  # PacketInfo's StreamID, the struct's first field
        except Exception:  # noqa: BLE001 - a damaged table is only a lost shortcut: lz4, zstandard, FlatBuffers each raise their own
            return None
        counts = [count for _, count in entries]
        if [offset for offset, _ in entries] != self._event_packets.offsets or min(counts, default=0) < 0 \
                or sum(counts) >= 2**63:
            return None
        return counts

    def _counted_elements(self, k: int) -> np.ndarray:
        """Event packet k's elements, refused when they are not as many as opening counted."""
        elements = self._event_elements(k)
        expected = int(self._starts[k + 1] - self._starts[k])
        if len(elements) != expected:
            raise CorruptFileError(self.path, f"the event packet at byte {self._event_packets.offsets[k] - 8} holds "
                                              f"{len(elements)} events, the file's data table says {expected}")
        return elements

    def _event_elements(self, k: int) -> np.ndarray:
        with self._packet(self._event_packets, k, "EVTS") as table:
            first, count = table.vector(0, EVENT_DTYPE.itemsize)
            return np.frombuffer(table.buffer, EVENT_DTYPE, count, first)

    def _read_columns(self, start: int, stop: int) -> tuple[np.ndarray, ...]:
        packets, wanted = packets_holding(self._starts, start, stop)
        elements = np.concatenate([self._counted_elements(k) for k in packets])[wanted]
        return elements["t"] - self._t0, elements["x"], elements["y"], elements["on"]

    def _frame(self, index: int) -> np.ndarray:
        with self._packet(self._frame_packets, index, "FRME") as table:
            return self._frame_image(table, index)

    def _frame_image(self, table: _Table, index: int) -> np.ndarray:
        channels = FRAME_CHANNELS.get(table.scalar(5, "<b", 0))
        if channels is None:
            raise CorruptFileError(self.path, f"frame {index} has the unknown pixel format {table.scalar(5, '<b')}")
        width, height = table.scalar(6, "<h"), table.scalar(7, "<h")
        offset_x, offset_y = table.scalar(8, "<h"), table.scalar(9, "<h")
        if width <= 0 or height <= 0:  # DV writes no empty frames: before, a black image passed for one
            raise CorruptFileError(self.path, f"frame {index} is {width}x{height}: no pixels")
        first, count = table.vector(10, 1)
        if count != width * height * channels:
            raise CorruptFileError(self.path, f"frame {index} holds {count} bytes for {width}x{height}x{channels}")
        pixels = np.frombuffer(table.buffer, np.uint8, count, first).reshape(height, width, channels)
        if channels > 1:  # BGR(A)
            pixels = grey_from_bgr(pixels)
        image = np.zeros(self._frame_shape, np.uint8)
        if not (0 <= offset_y and offset_y + height <= image.shape[0] and 0 <= offset_x and offset_x + width <= image.shape[1]):
            raise CorruptFileError(self.path, f"frame {index} ({width}x{height} at {offset_x},{offset_y}) lies "
                                              f"outside the {image.shape[1]}x{image.shape[0]} frame stream")
        image[offset_y : offset_y + height, offset_x : offset_x + width] = pixels.reshape(height, width)
        return image

    def _frame_times(self) -> np.ndarray:
        """Each frame's end of exposure (its timestamp where none is recorded), relative."""
        times = []
        for index in range(len(self._frame_packets.offsets)):
            with self._packet(self._frame_packets, index, "FRME") as table:
                exposure_end = table.scalar(4, "<q", 0)
                times.append((exposure_end if exposure_end else table.scalar(0, "<q", 0)) - self._t0)
        return np.array(times, np.int64)

    def _signals(self, packets: dict[int, _Packets]) -> SignalsOnAccess:
        """IMU samples and triggers, relative times in us, read when first asked for (small beside
        the events: kept whole then)."""
        streams = [self._companions[kind] for kind in ("IMUS", "TRIG") if kind in self._companions]
        names = [name for s in streams for name in ([f"imu_{n}" for n in IMU_FIELDS] if s.kind == "IMUS" else ["triggers"])]
        return SignalsOnAccess(names, lambda: self._signal_values(streams, packets))

    def _signal_values(self, streams: list[Stream], packets: dict[int, _Packets]) -> dict[str, np.ndarray]:
        signals: dict[str, np.ndarray] = {}
        for stream in streams:
            rows = []
            for k in range(len(packets[stream.id].offsets)):
                with self._packet(packets[stream.id], k, stream.kind) as table:
                    for element in table.tables(0):
                        if stream.kind == "IMUS":
                            rows.append([element.scalar(0, "<q") - self._t0,
                                         *(element.scalar(1 + i, "<f", 0.0) for i in range(len(IMU_FIELDS)))])
                        else:
                            rows.append([element.scalar(0, "<q") - self._t0, element.scalar(1, "<b", 0)])
            table = np.array(rows, np.float64).reshape(-1, 1 + (len(IMU_FIELDS) if stream.kind == "IMUS" else 1))
            if stream.kind == "IMUS":
                signals.update({f"imu_{name}": table[:, [0, 1 + i]] for i, name in enumerate(IMU_FIELDS)})
            else:
                signals["triggers"] = table
        return signals

    def close(self) -> None:
        self._file.close()


def _pread(file, position: int, size: int) -> bytes:
    file.seek(position)
    return file.read(size)


def _event_stream(path: Path, streams: dict[int, Stream], camera: str) -> Stream:
    """The event stream ``--camera`` names (by its camera, module/output or id); by default the
    file's only one. A file of several (a stereo rig, a filter's output recorded beside the
    camera's) is not read from one chosen silently."""
    events = [s for s in streams.values() if s.kind == "EVTS"]
    if not events:
        raise CorruptFileError(path, "the AEDAT4 file has no event stream")
    listed = ", ".join(f"{s.source or 'no camera named'} ({s.recorded_from or 'unnamed'}, stream {s.id})" for s in events)
    if camera == ReadOptions.camera:  # none given
        if len(events) == 1:
            return events[0]
        raise InputError(path, f"holds {len(events)} event streams: {listed}; choose one with --camera "
                               "(a camera, a module/output or a stream id)")
    chosen = [s for s in events if camera in s.names]
    if len(chosen) != 1:
        raise InputError(path, f"--camera {camera} names {len(chosen) or 'none'} of its event streams: {listed}")
    return chosen[0]


def _companions(streams: dict[int, Stream], events: Stream, packets: dict[int, _Packets]) -> dict[str, Stream]:
    """The frame, IMU and trigger streams read with the event stream ``events``, by kind: of its
    camera (its source, in a file of several event streams), holding packets, and of those the
    one its module recorded, else the first (a camera's APS frames, not an accumulator's event
    frames recorded beside them)."""
    several = sum(s.kind == "EVTS" for s in streams.values()) > 1
    chosen = {}
    for kind in ("FRME", "IMUS", "TRIG"):
        found = [s for s in streams.values()
                 if s.kind == kind and s.id in packets and (not several or s.source == events.source)]
        if found:
            chosen[kind] = next((s for s in found if s.module == events.module), found[0])
    return chosen


def _streams(path: Path, description: str) -> dict[int, Stream]:
    """The streams the header's XML description lists (outInfo/<id>: typeIdentifier, info/sizeX, sizeY)."""
    try:
        root = ElementTree.fromstring(description)
    except ElementTree.ParseError as err:
        raise CorruptFileError(path, f"the AEDAT4 header's description is not XML ({err})") from err
    output = next((node for node in root.iter("node") if node.get("name") == "outInfo"), None)
    if output is None:
        raise CorruptFileError(path, "the AEDAT4 header describes no streams (no 'outInfo' node)")
    streams = {}
    for node in output.findall("node"):
        attributes = {a.get("key"): a.text for a in node.findall("attr")}
        info = next((n for n in node.findall("node") if n.get("name") == "info"), None)
        sizes = {a.get("key"): a.text for a in info.findall("attr")} if info is not None else {}
        try:
            stream = Stream(int(node.get("name")), attributes.get("typeIdentifier") or "",
                            int(sizes.get("sizeX") or 0), int(sizes.get("sizeY") or 0), sizes.get("source") or "",
                            attributes.get("originalModuleName") or "", attributes.get("originalOutputName") or "")
        except (TypeError, ValueError) as err:
            raise CorruptFileError(path, f"the AEDAT4 header describes a stream badly ({err})") from err
        if stream.kind in ("EVTS", "FRME") and not (stream.width > 0 and stream.height > 0):
            raise CorruptFileError(path, f"the AEDAT4 header gives stream {stream.id} no size (info/sizeX, sizeY)")
        streams[stream.id] = stream
    return streams
