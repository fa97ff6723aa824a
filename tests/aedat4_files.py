"""AEDAT4 files built for the tests from the format's description: the FlatBuffers are made by
the ``flatbuffers`` package's Builder after the schemas of neuromorphicsystems/aedat
(flatbuffers/*.fbs), compressed by ``lz4`` and ``zstandard``; nothing of evtools' reader is used."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import flatbuffers
import lz4.frame
import numpy as np
import zstandard

MAGIC = b"#!AER-DAT4.0\r\n"
COMPRESSION = {"none": 0, "lz4": 1, "zstd": 3}


@dataclass
class Frame:
    t: int
    exposure_begin_t: int
    exposure_end_t: int
    pixels: np.ndarray  # (H, W) grey, or (H, W, 3|4) BGR(A)
    offset: tuple[int, int] = (0, 0)  # x, y


@dataclass
class Aedat4:
    width: int = 346
    height: int = 260
    frames: bool = True
    # packets in file order: ("events", (t, x, y, on) rows) | ("frame", Frame) | ("imus", rows of 11) | ("triggers", rows of 2),
    # each of camera 0 unless a third item names another
    packets: list[tuple] = field(default_factory=list)
    cameras: tuple[str, ...] = ("DAVIS346_00000499",)  # each camera's streams, as a stereo rig's DV recording holds
    # an accumulator module's event frames of camera 0 ("accumulated" packets), listed before its APS frames
    accumulator: bool = False


STREAMS = {"events": (0, "EVTS"), "frame": (1, "FRME"), "imus": (2, "IMUS"), "triggers": (3, "TRIG"),
           "accumulated": (99, "FRME")}


def stream_id(kind: str, camera: int) -> int:
    return 4 * camera + STREAMS[kind][0]


def description(spec: Aedat4, compression: str) -> str:
    nodes = []
    for camera, source in enumerate(spec.cameras):
        kinds = [*(["accumulated"] if spec.accumulator and camera == 0 else []), "events", "frame", "imus", "triggers"]
        for name in kinds:
            identifier = STREAMS[name][1]
            if name == "frame" and not spec.frames:
                continue
            number = stream_id(name, camera)
            module, output = ("accumulator", "frames") if name == "accumulated" else (f"capture{camera or ''}", name)
            sizes = (f'<attr key="sizeX" type="int">{spec.width}</attr><attr key="sizeY" type="int">{spec.height}</attr>'
                     if identifier in ("EVTS", "FRME") else "")
            info = (f'<node name="info" path="/mainloop/Recorder/outInfo/{number}/info/">{sizes}'
                    f'<attr key="source" type="string">{source}</attr></node>')
            nodes.append(f'<node name="{number}" path="/mainloop/Recorder/outInfo/{number}/">'
                         f'<attr key="compression" type="string">{compression.upper()}</attr>'
                         f'<attr key="originalModuleName" type="string">{module}</attr>'
                         f'<attr key="originalOutputName" type="string">{output}</attr>'
                         f'<attr key="typeIdentifier" type="string">{identifier}</attr>{info}</node>')
    return f'<dv version="2.0"><node name="outInfo" path="/mainloop/Recorder/outInfo/">{"".join(nodes)}</node></dv>'


def ioheader(compression: int, data_table: int, text: str) -> bytes:
    builder = flatbuffers.Builder(256)
    string = builder.CreateString(text)
    builder.StartObject(3)
    builder.PrependInt32Slot(0, compression, 0)
    builder.PrependInt64Slot(1, data_table, -1)
    builder.PrependUOffsetTRelativeSlot(2, string, 0)
    builder.Finish(builder.EndObject(), file_identifier=b"IOHE")
    return bytes(builder.Output())


def event_packet(rows) -> bytes:
    builder = flatbuffers.Builder(1024)
    builder.StartVector(16, len(rows), 8)
    for t, x, y, on in reversed(rows):  # struct Event {t: int64; x: int16; y: int16; on: bool}, 16 bytes
        builder.Prep(8, 16)
        builder.Pad(3)
        builder.PrependBool(bool(on))
        builder.PrependInt16(y)
        builder.PrependInt16(x)
        builder.PrependInt64(t)
    elements = builder.EndVector()
    builder.StartObject(1)
    builder.PrependUOffsetTRelativeSlot(0, elements, 0)
    builder.FinishSizePrefixed(builder.EndObject(), file_identifier=b"EVTS")
    return bytes(builder.Output())


def frame_packet(frame: Frame) -> bytes:
    builder = flatbuffers.Builder(1024)
    pixels = np.ascontiguousarray(frame.pixels, np.uint8)
    data = builder.CreateNumpyVector(pixels.reshape(-1))
    height, width = pixels.shape[:2]
    pixel_format = {2: 0, 3: 16, 4: 24}[pixels.ndim if pixels.ndim == 2 else pixels.shape[2]]
    builder.StartObject(11)
    builder.PrependInt64Slot(0, frame.t, 0)
    builder.PrependInt64Slot(1, frame.exposure_begin_t - 100, 0)  # readout begins before the exposure
    builder.PrependInt64Slot(2, frame.exposure_end_t + 100, 0)
    builder.PrependInt64Slot(3, frame.exposure_begin_t, 0)
    builder.PrependInt64Slot(4, frame.exposure_end_t, 0)
    builder.PrependInt8Slot(5, pixel_format, 0)
    builder.PrependInt16Slot(6, width, 0)
    builder.PrependInt16Slot(7, height, 0)
    builder.PrependInt16Slot(8, frame.offset[0], 0)
    builder.PrependInt16Slot(9, frame.offset[1], 0)
    builder.PrependUOffsetTRelativeSlot(10, data, 0)
    builder.FinishSizePrefixed(builder.EndObject(), file_identifier=b"FRME")
    return bytes(builder.Output())


def table_packet(rows, identifier: bytes) -> bytes:
    """IMUS (t, temperature, accelerometer xyz, gyroscope xyz, magnetometer xyz) or TRIG (t, source)."""
    builder = flatbuffers.Builder(1024)
    offsets = []
    for row in rows:
        builder.StartObject(len(row))
        builder.PrependInt64Slot(0, int(row[0]), 0)
        for slot, value in enumerate(row[1:], start=1):
            if identifier == b"IMUS":
                builder.PrependFloat32Slot(slot, float(value), 0.0)
            else:
                builder.PrependInt8Slot(slot, int(value), 0)
        offsets.append(builder.EndObject())
    return finished_with_tables(builder, offsets, identifier)


def finished_with_tables(builder: flatbuffers.Builder, offsets: list[int], identifier: bytes) -> bytes:
    """The size-prefixed FlatBuffer whose root holds, as its first field, the tables at ``offsets``."""
    builder.StartVector(4, len(offsets), 4)
    for offset in reversed(offsets):
        builder.PrependUOffsetTRelative(offset)
    elements = builder.EndVector()
    builder.StartObject(1)
    builder.PrependUOffsetTRelativeSlot(0, elements, 0)
    builder.FinishSizePrefixed(builder.EndObject(), file_identifier=identifier)
    return bytes(builder.Output())


def compress(data: bytes, compression: str) -> bytes:
    if compression == "lz4":
        return lz4.frame.compress(data)
    if compression == "zstd":
        return zstandard.ZstdCompressor().compress(data)
    return data


def data_table_packet(entries) -> bytes:
    """DV's FileDataTable (FTAB; dv-processing's FileDataTable.fbs): per packet, table
    FileDataDefinition {ByteOffset: int64; PacketInfo: struct PacketHeader {StreamID: int32;
    Size: int32}; NumElements: int64; TimestampStart: int64; TimestampEnd: int64}."""
    builder = flatbuffers.Builder(1024)
    offsets = []
    for byte_offset, stream_id, size, count, t_start, t_end in entries:
        builder.StartObject(5)
        builder.PrependInt64Slot(4, t_end, 0)
        builder.PrependInt64Slot(3, t_start, 0)
        builder.PrependInt64Slot(2, count, 0)
        builder.Prep(4, 8)
        builder.PrependInt32(size)
        builder.PrependInt32(stream_id)
        builder.PrependStructSlot(1, builder.Offset(), 0)
        builder.PrependInt64Slot(0, byte_offset, 0)
        offsets.append(builder.EndObject())
    return finished_with_tables(builder, offsets, b"FTAB")


def write_aedat4(path: Path, spec: Aedat4, compression: str = "lz4", data_table: bool = False,
                 miscounted: dict[int, int] | None = None) -> Path:
    """``data_table``: the FileDataTable DV writes at the end, its position in the header;
    ``miscounted``: {packet index: count} written into the table instead of a packet's own."""
    payloads, entries = [], []
    for index, (kind, content, *camera) in enumerate(spec.packets):
        number, identifier = stream_id(kind, *camera or [0]), STREAMS[kind][1]
        is_frame = identifier == "FRME"
        data = frame_packet(content) if is_frame else event_packet(content) if kind == "events" else \
            table_packet(content, identifier.encode())
        payloads.append(struct.pack("<II", number, len(packed := compress(data, compression))) + packed)
        times = [content.t] if is_frame else [int(row[0]) for row in content]
        count = 1 if is_frame else len(content)
        entries.append([number, len(packed), (miscounted or {}).get(index, count), min(times, default=0),
                        max(times, default=0)])
    placeholder = ioheader(COMPRESSION[compression], 0 if data_table else -1, description(spec, compression))
    position = len(MAGIC) + 4 + len(placeholder)  # the header's length does not depend on the table's place
    for entry, payload in zip(entries, payloads):
        entry.insert(0, position + 8)  # the payload's offset, after the packet's stream id and size
        position += len(payload)
    header = ioheader(COMPRESSION[compression], position, description(spec, compression)) if data_table else placeholder
    table = compress(data_table_packet(entries), compression) if data_table else b""
    path.write_bytes(MAGIC + struct.pack("<I", len(header)) + header + b"".join(payloads) + table)
    return path
