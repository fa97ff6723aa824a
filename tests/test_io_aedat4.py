"""The AEDAT4 reader: the real DVXplorer file against its README's counts and against the `aedat`
decoder, field by field; files built from the format's description (tests/aedat4_files.py) with
frames, IMU, triggers and every compression; a truncated last packet; damage; conversion."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from aedat4_files import Aedat4, Frame, write_aedat4
from cli import run_cli
from conftest import damage_outcomes

from evtools.cache import Cache
from evtools.convert import ConvertSpec, convert
from evtools.errors import CorruptFileError
from evtools.io import ReadOptions, detect_format, open_recording
from evtools.representations import VoxelGrid

REAL = Path(__file__).parents[2] / "shared" / "realdata" / "dvxplorer-tonic" / "dvxplorer_person.aedat4"
T0 = 1_700_000_000_000_000  # absolute microseconds, as DV writes them


def davis_file(n_frames: int = 4, seed: int = 0) -> Aedat4:
    """A DAVIS346 recording: event packets of 1 ms with a frame every 50 ms, IMU and triggers."""
    rng = np.random.default_rng(seed)
    spec = Aedat4()
    for ms in range(n_frames * 50 + 10):
        n = int(rng.integers(0, 40))
        t = np.sort(rng.integers(T0 + ms * 1000, T0 + (ms + 1) * 1000, n))
        rows = list(zip(t.tolist(), rng.integers(0, 346, n).tolist(), rng.integers(0, 260, n).tolist(),
                        rng.integers(0, 2, n).tolist()))
        spec.packets.append(("events", rows))
        if ms % 50 == 49 and ms // 50 < n_frames:
            spec.packets.append(("frame", Frame(t=T0 + ms * 1000 - 5000, exposure_begin_t=T0 + ms * 1000 - 9000,
                                                exposure_end_t=T0 + ms * 1000 + 500,
                                                pixels=rng.integers(0, 256, (260, 346), dtype=np.uint8))))
        if ms % 10 == 0:
            spec.packets.append(("imus", [[T0 + ms * 1000 + 7, 30.5, 0.1, -0.9, 0.2, 1.5, -2.5, 0.25, 0, 0, 0]]))
        if ms == 100:
            spec.packets.append(("triggers", [[T0 + ms * 1000 + 3, 6], [T0 + ms * 1000 + 9, 7]]))
    return spec


def expected_events(spec: Aedat4) -> np.ndarray:
    return np.array([row for kind, rows in spec.packets if kind == "events" for row in rows], np.int64)


@pytest.mark.skipif(not REAL.exists(), reason="../shared/realdata is not here")
def test_the_real_dvxplorer_file_matches_its_readme_and_the_aedat_decoder():
    import aedat

    with open_recording(REAL) as rec:
        assert detect_format(REAL) == "aedat4"
        assert (rec.width, rec.height, rec.n_events, rec.compression, rec.truncated_packets) == (320, 240, 111_954, "lz4", 0)
        events = rec.read().events
        assert rec.t0_us == 1605537493718345 and rec.t0_us + int(events.t[-1]) == 1605537494308262
        assert (int((events.p > 0).sum()), int((events.p < 0).sum())) == (55_023, 56_931)
        assert (events.x.min(), events.x.max(), events.y.min(), events.y.max()) == (0, 319, 0, 239)
        assert rec.frames is None and len(rec.signals["imu_gyroscope_x"]) == 475 and "triggers" not in rec.signals
        packets = list(aedat.Decoder(str(REAL)))
        reference = np.concatenate([p["events"] for p in packets if "events" in p])
        np.testing.assert_array_equal(events.t, reference["t"].astype(np.int64) - rec.t0_us)
        np.testing.assert_array_equal(events.x, reference["x"])
        np.testing.assert_array_equal(events.y, reference["y"])
        np.testing.assert_array_equal(events.p, np.where(reference["on"], 1, -1))
        imus = np.concatenate([p["imus"] for p in packets if "imus" in p])
        np.testing.assert_array_equal(rec.signals["imu_accelerometer_x"][:, 0], imus["t"].astype(np.int64) - rec.t0_us)
        for name in ("temperature", "accelerometer_x", "accelerometer_y", "accelerometer_z", "gyroscope_x",
                     "gyroscope_y", "gyroscope_z", "magnetometer_x", "magnetometer_y", "magnetometer_z"):
            np.testing.assert_array_equal(rec.signals[f"imu_{name}"][:, 1], imus[name].astype(np.float64))
        # any index range reads the same events as the whole
        middle = rec.read(50_000, 50_017).events
        np.testing.assert_array_equal(middle.t, events.t[50_000:50_017])


@pytest.mark.parametrize("data_table", [False, True], ids=["no-table", "data-table"])
@pytest.mark.parametrize("compression", ["none", "lz4", "zstd"])
def test_every_field_of_a_built_davis346_file(tmp_path, compression, data_table):
    spec = davis_file()
    path = write_aedat4(tmp_path / "rec.aedat4", spec, compression, data_table=data_table)
    rows = expected_events(spec)
    with open_recording(path) as rec:
        assert (rec.format_name, rec.width, rec.height, rec.n_events, rec.compression) == (
            "aedat4", 346, 260, len(rows), None if compression == "none" else compression)
        assert rec.t0_us == rows[0, 0]
        events = rec.read().events
        np.testing.assert_array_equal(events.t, rows[:, 0] - rows[0, 0])
        np.testing.assert_array_equal(events.x, rows[:, 1])
        np.testing.assert_array_equal(events.y, rows[:, 2])
        np.testing.assert_array_equal(events.p, np.where(rows[:, 3] == 1, 1, -1))
        frames = [content for kind, content in spec.packets if kind == "frame"]
        assert len(rec.frames) == 4 and rec.frames.shape == (260, 346)
        # frames are stamped with the end of their exposure
        np.testing.assert_array_equal(rec.frames.t_us, [f.exposure_end_t - rows[0, 0] for f in frames])
        for k, frame in enumerate(frames):
            np.testing.assert_array_equal(rec.frames[k], frame.pixels)
        imu = rec.signals["imu_gyroscope_x"]
        assert imu.shape == (21, 2) and imu[0, 0] == T0 + 7 - rows[0, 0] and imu[0, 1] == np.float32(1.5)
        assert rec.signals["imu_temperature"][3, 1] == np.float32(30.5)
        np.testing.assert_array_equal(rec.signals["triggers"], [[T0 + 100_003 - rows[0, 0], 6], [T0 + 100_009 - rows[0, 0], 7]])


def decoded_event_packets(monkeypatch) -> list[int]:
    """The event packets that the reader decodes from now on, in order."""
    from evtools.io.aedat4 import Aedat4Recording

    decoded, decode = [], Aedat4Recording._event_elements
    monkeypatch.setattr(Aedat4Recording, "_event_elements", lambda rec, k: decoded.append(k) or decode(rec, k))
    return decoded


@pytest.mark.skipif(not REAL.exists(), reason="../shared/realdata is not here")
def test_opening_counts_the_events_from_the_data_table(monkeypatch):
    decoded = decoded_event_packets(monkeypatch)
    with open_recording(REAL) as rec:  # DV wrote its table: 59 event packets, 111,954 events
        assert decoded == [0] and rec.n_events == 111_954  # the first packet alone, for the first time
        assert len(rec.read(50_000, 50_017).events) == 17 and decoded == [0, 24]  # and the one packet holding them


def test_a_data_table_that_lies_about_a_packet_is_refused_when_it_is_read(tmp_path, monkeypatch):
    spec = Aedat4(width=8, height=6, frames=False, packets=[
        ("events", [(T0, 1, 1, 1), (T0 + 5, 2, 2, 0)]), ("imus", [[T0 + 1, 30.0, 1, 2, 3, 4, 5, 6, 7, 8, 9]]),
        ("events", [(T0 + 9, 3, 3, 1)]), ("events", [(T0 + 12, 4, 4, 1)])])
    decoded = decoded_event_packets(monkeypatch)
    with open_recording(write_aedat4(tmp_path / "sound.aedat4", spec, data_table=True)) as rec:
        assert rec.n_events == 4 and decoded == [0]
    path = write_aedat4(tmp_path / "lies.aedat4", spec, data_table=True, miscounted={2: 3})
    with open_recording(path) as rec:
        assert rec.n_events == 6  # as the table says: nothing is decoded to check it at open
        assert list(rec.read(0, 2).events.t) == [0, 5]
        packet = 14 + 4 + int.from_bytes(path.read_bytes()[14:18], "little")  # the second event packet's head:
        packet += 8 + int.from_bytes(path.read_bytes()[packet + 4 : packet + 8], "little")  # after the first
        packet += 8 + int.from_bytes(path.read_bytes()[packet + 4 : packet + 8], "little")  # and the IMU packet
        with pytest.raises(CorruptFileError, match=rf"lies.aedat4: the event packet at byte {packet} holds 1 events, "
                                                   r"the file's data table says 3$"):
            rec.read(0, 3)
    result = run_cli("convert", path, "-o", tmp_path / "lies", "--every", "5us")
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "data table says 3" in result.stderr
    assert not list(tmp_path.glob("lies.zarr*"))
    # a table that cannot be read, or whose entries are not the packets found, is not used: decoding counts
    sound = (tmp_path / "sound.aedat4").read_bytes()
    table = 14 + 4 + int.from_bytes(sound[14:18], "little")  # after the header, the packets, then the table
    for _ in spec.packets:
        table += 8 + int.from_bytes(sound[table + 4 : table + 8], "little")
    (tmp_path / "garbled.aedat4").write_bytes(sound[:table] + bytes(len(sound) - table))
    write_aedat4(tmp_path / "negative.aedat4", spec, data_table=True, miscounted={3: -1})
    for name in ("garbled", "negative"):
        decoded.clear()
        with open_recording(tmp_path / f"{name}.aedat4") as rec:
            assert rec.n_events == 4 and decoded == [0, 1, 2, 0], name  # each event packet, then the first
            assert list(rec.read().events.t) == [0, 5, 9, 12]


def test_signals_are_decoded_when_asked_for_so_damage_there_stops_no_conversion(tmp_path):
    spec = Aedat4(width=8, height=6, frames=False, packets=[
        ("events", [(T0, 1, 1, 1), (T0 + 5, 2, 2, 0)]), ("imus", [[T0 + 1, 30.0, 1, 2, 3, 4, 5, 6, 7, 8, 9]])])
    data = write_aedat4(tmp_path / "rec.aedat4", spec, "none").read_bytes()
    imu_packet = data.rindex(b"IMUS")  # the IMU packet's FlatBuffer identifier: now unreadable
    (tmp_path / "bad_imu.aedat4").write_bytes(data[:imu_packet] + b"XXXX" + data[imu_packet + 4 :])
    with open_recording(tmp_path / "bad_imu.aedat4") as rec:
        assert list(rec.signals) == [f"imu_{n}" for n in ("temperature", "accelerometer_x", "accelerometer_y",
                                     "accelerometer_z", "gyroscope_x", "gyroscope_y", "gyroscope_z",
                                     "magnetometer_x", "magnetometer_y", "magnetometer_z")]
        assert list(rec.read().events.t) == [0, 5]
        with pytest.raises(CorruptFileError, match=r"bad_imu.aedat4: damaged IMUS packet at byte \d+ \(expected a "
                                                   r"FlatBuffer 'IMUS', found b'XXXX'\)"):
            rec.signals["imu_temperature"]
    assert run_cli("convert", tmp_path / "bad_imu.aedat4", "-o", tmp_path / "c", "--every", "5us").returncode == 0
    result = run_cli("info", tmp_path / "bad_imu.aedat4")
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "damaged IMUS packet" in result.stderr


def test_colour_and_region_of_interest_frames_become_grey_full_frames(tmp_path):
    spec = Aedat4(width=8, height=6)
    bgr = np.zeros((2, 3, 3), np.uint8)
    bgr[0, 0] = (255, 0, 0)  # blue
    bgr[1, 2] = (0, 0, 200)  # red
    spec.packets = [("events", [(T0, 1, 1, 1)]),
                    ("frame", Frame(T0, T0, T0 + 10, bgr, offset=(4, 2))),
                    ("frame", Frame(T0 + 20, T0 + 20, T0 + 30, np.full((6, 8), 9, np.uint8)))]
    with open_recording(write_aedat4(tmp_path / "roi.aedat4", spec)) as rec:
        image = rec.frames[0]
        expected = np.zeros((6, 8), np.uint8)
        expected[2, 4] = round(255 * 0.114)
        expected[3, 6] = round(200 * 0.299)
        np.testing.assert_array_equal(image, expected)
        np.testing.assert_array_equal(rec.frames[1], 9)
    # a frame of no pixels passed for a black one; one outside its stream is refused as before
    for frame, problem in ((Frame(T0, T0, T0 + 10, np.zeros((0, 0), np.uint8)), "frame 0 is 0x0: no pixels"),
                           (Frame(T0, T0, T0 + 10, bgr, offset=(7, 2)), "frame 0 (3x2 at 7,2) lies outside the 8x6 frame stream")):
        spec.packets[1] = ("frame", frame)
        with open_recording(write_aedat4(tmp_path / "bad.aedat4", spec)) as rec:
            with pytest.raises(CorruptFileError) as refused:
                rec.frames[0]
        assert str(refused.value) == f"{tmp_path / 'bad.aedat4'}: {problem}"


def test_a_truncated_last_packet_is_left_out_and_counted(tmp_path):
    spec = davis_file(n_frames=1)
    rows = expected_events(spec)
    whole = write_aedat4(tmp_path / "whole.aedat4", spec).read_bytes()
    spec.packets.append(("events", [(T0 + 999_000, 3, 4, 1), (T0 + 999_001, 5, 6, 0)]))
    longer = write_aedat4(tmp_path / "longer.aedat4", spec).read_bytes()
    # cut inside the last packet's payload, and inside its 8-byte head
    for name, data in (("payload", longer[:-7]), ("head", whole + longer[len(whole) : len(whole) + 5])):
        path = tmp_path / f"cut_{name}.aedat4"
        path.write_bytes(data)
        with open_recording(path) as rec:
            assert rec.truncated_packets == 1 and rec.n_events == len(rows)
            np.testing.assert_array_equal(rec.read().events.t, rows[:, 0] - rows[0, 0])


def test_damage_is_one_line_naming_the_file(tmp_path):
    spec = Aedat4(width=8, height=6, frames=False, packets=[("events", [(T0, 1, 1, 1)]), ("events", [(T0 + 5, 2, 2, 0)])])
    path = write_aedat4(tmp_path / "bad.aedat4", spec)
    data = path.read_bytes()
    last_frame = data.rindex(b"\x04\x22\x4d\x18")  # the last packet's LZ4 frame magic
    path.write_bytes(data[:last_frame] + b"\x00" + data[last_frame + 1 :])
    with pytest.raises(CorruptFileError, match=r"bad.aedat4: damaged EVTS packet at byte \d+ \("):
        open_recording(path)
    path.write_bytes(b"#!AER-DAT4.0\r\n\x05\x00\x00\x00abc")
    with pytest.raises(CorruptFileError, match=r"bad.aedat4: damaged AEDAT4 header"):
        open_recording(path)
    no_events = Aedat4(width=8, height=6, frames=False)
    write_aedat4(path, no_events)
    path.write_bytes(path.read_bytes().replace(b"EVTS", b"XXXX"))
    with pytest.raises(CorruptFileError, match="has no event stream"):
        open_recording(path)
    result = run_cli("info", path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "bad.aedat4" in result.stderr


def test_convert_a_davis346_file_with_frames_end_to_end(tmp_path):
    spec = davis_file()
    path = write_aedat4(tmp_path / "rec.aedat4", spec)
    result = run_cli("convert", path, "-o", tmp_path / "rec", "--repr", "voxel", "--window", "50ms")
    assert result.returncode == 0, result.stderr
    cache = Cache(tmp_path / "rec.zarr")
    rows = expected_events(spec)
    t = rows[:, 0] - rows[0, 0]
    frame_t = np.array([c.exposure_end_t for k, c in spec.packets if k == "frame"]) - rows[0, 0]
    assert len(cache) == 4
    for k, end in enumerate(frame_t):
        inside = (t >= end - 50_000) & (t < end)
        expected = VoxelGrid()(t[inside], rows[inside, 1], rows[inside, 2], np.where(rows[inside, 3] == 1, 1, -1), 346, 260)
        np.testing.assert_array_equal(cache.array("repr/voxel")[k], expected)
        assert cache.n_events[k] == inside.sum()
    np.testing.assert_array_equal(cache.array("aps")[2], [c for k, c in spec.packets if k == "frame"][2].pixels)
    assert convert(path, tmp_path / "rec", ConvertSpec()).up_to_date


def test_info_shows_ranges_signals_and_a_truncated_packet(tmp_path):
    spec = davis_file(n_frames=3)
    data = write_aedat4(tmp_path / "rec.aedat4", spec).read_bytes()
    (tmp_path / "cut.aedat4").write_bytes(data + data[-40:-10])  # the head of a packet that never ends
    rows = expected_events(spec)
    result = run_cli("info", tmp_path / "cut.aedat4")
    assert result.returncode == 0, result.stderr
    assert f"x {rows[:, 1].min()}..{rows[:, 1].max()}, y {rows[:, 2].min()}..{rows[:, 2].max()}" in result.stdout
    assert "imu (10 channels, 16 samples), triggers (2)" in result.stdout
    assert "the last packet is incomplete (a recording cut off) and was left out" in result.stderr


@pytest.mark.skipif(not REAL.exists(), reason="../shared/realdata is not here")
def test_info_on_the_real_file():
    result = run_cli("info", "--json", REAL)
    summary = __import__("json").loads(result.stdout)
    assert (summary["x_range"], summary["y_range"], summary["n_events"]) == ([0, 319], [0, 239], 111_954)
    assert summary["signal_samples"] == [475] * 10


def test_every_byte_of_imu_trigger_and_frame_packets_damaged_is_a_result_or_one_line(tmp_path):
    import struct

    spec = Aedat4(width=4, height=3, packets=[
        ("events", [(T0, 1, 1, 1), (T0 + 5, 2, 2, 0)]),
        ("frame", Frame(T0, T0, T0 + 3, np.arange(12, dtype=np.uint8).reshape(3, 4))),
        ("imus", [[T0 + 1, 30.0, 1, 2, 3, 4, 5, 6, 7, 8, 9]]),
        ("triggers", [[T0 + 2, 6]])])
    data = write_aedat4(tmp_path / "whole.aedat4", spec, "none").read_bytes()
    starts = []  # each packet's payload range: after the magic, the header's length and the header
    position = len(b"#!AER-DAT4.0\r\n") + 4 + struct.unpack_from("<I", data, 14)[0]
    while position < len(data):
        _, length = struct.unpack_from("<II", data, position)
        starts.append((position + 8, position + 8 + length))
        position += 8 + length
    in_packets = [at for first, stop in starts[1:] for at in range(first, stop)]  # the frame, IMU and trigger packets
    assert damage_outcomes(data, in_packets, 0xA5, tmp_path / "damaged.aedat4") == {"read", "one line"}


def test_a_stereo_file_is_read_from_the_camera_asked_for_never_one_chosen_silently(tmp_path):
    # a stereo rig's DV recording: each camera's events, frames and IMU in streams of its own source;
    # the left camera's event frames from an accumulator module listed before its APS frames
    left, right = davis_file(n_frames=2, seed=1), davis_file(n_frames=2, seed=2)
    accumulated = [("accumulated", dataclasses.replace(c, pixels=255 - c.pixels)) for k, c in left.packets if k == "frame"]
    spec = Aedat4(cameras=("DAVIS346_00000499", "DAVIS346_00000500"), accumulator=True,
                  packets=[*accumulated, *left.packets, *((kind, content, 1) for kind, content in right.packets)])
    path = write_aedat4(tmp_path / "stereo.aedat4", spec)
    listed = ("DAVIS346_00000499 (capture/events, stream 0), DAVIS346_00000500 (capture1/events, stream 4)")
    result = run_cli("info", path)
    assert (result.returncode, result.stderr) == (2, f"error: {path}: holds 2 event streams: {listed}; choose one with "
                                                     "--camera (a camera, a module/output or a stream id)\n")
    result = run_cli("info", path, "--camera", "DAVIS346_1")
    assert (result.returncode, result.stderr) == (2, f"error: {path}: --camera DAVIS346_1 names none of its event "
                                                     f"streams: {listed}\n")
    for camera, one in (("DAVIS346_00000500", right), ("capture1/events", right), ("4", right), ("0", left)):
        with open_recording(path, options=ReadOptions(camera=camera)) as rec:
            rows = expected_events(one)
            events = rec.read().events
            np.testing.assert_array_equal(events.t, rows[:, 0] - rows[0, 0])
            np.testing.assert_array_equal(events.x, rows[:, 1])
            frames = [c for k, c in one.packets if k == "frame"]
            np.testing.assert_array_equal(rec.frames.t_us, [c.exposure_end_t - rows[0, 0] for c in frames])
            np.testing.assert_array_equal(rec.frames[1], frames[1].pixels)
            assert len(rec.signals["imu_temperature"]) == sum(k == "imus" for k, _ in one.packets)
    result = run_cli("convert", path, "-o", tmp_path / "right", "--camera", "DAVIS346_00000500", "--window", "50ms")
    assert result.returncode == 0, result.stderr
    cache = Cache(tmp_path / "right.zarr")
    np.testing.assert_array_equal(cache.array("aps")[1], [c for k, c in right.packets if k == "frame"][1].pixels)
    assert cache.attrs["read_options"]["camera"] == "DAVIS346_00000500"
