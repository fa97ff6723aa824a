"""The event simulator: the sensor model on hand-made frames, a static scene, determinism, each
output layout read back through the readers, and masks aligned with frames."""

import json
import math

import h5py
import numpy as np
import pytest

from evtools.io import open_recording
from evtools.simulate import SimulationSpec, make_demo, DemoPreset, simulate_recordings, write_recording
from evtools.simulate.scene import Scene, SceneConfig
from evtools.simulate.sensor import LOG_EPS, PixelState, SensorModel, events_between, log_intensity
from evtools.simulate.sequence import CONDITION_NAMES, SequenceConfig, simulate

QUIET = SensorModel(c_on=0.25, c_off=0.25, c_spread=0.0, refractory_us=0.0, shot_noise_hz=0.0, hot_pixels=0)


def edge_frame(position: float, width: int = 20, dark: float = 0.1, bright: float = 0.8) -> np.ndarray:
    """Columns left of ``position`` bright, the others dark, on a 1-row image."""
    return np.where(np.arange(width)[None, :] < position, bright, dark).astype(np.float32)


def test_moving_edge_gives_the_expected_events():
    # a bright edge moves right by one column per internal frame of 1 ms
    rng = np.random.default_rng(0)
    frames = [edge_frame(k) for k in range(0, 21)]
    state = PixelState.start(log_intensity(frames[0]), QUIET, rng)
    chunks = [events_between(log_intensity(frames[k]), log_intensity(frames[k + 1]), k * 1000.0, (k + 1) * 1000.0,
                             state, QUIET, rng) for k in range(20)]
    t, x, y, p = (np.concatenate(c) for c in zip(*chunks))
    per_pixel = int(math.log((0.8 + LOG_EPS) / (0.1 + LOG_EPS)) / 0.25)  # 8 crossings of 0.25 in log(8)
    assert per_pixel == 8
    assert len(t) == 20 * per_pixel
    assert (p == 1).all() and (y == 0).all()
    for column in range(20):
        times = t[x == column]
        assert len(times) == per_pixel
        # column c turns bright between frame c and c + 1: within that internal frame
        assert (times >= column * 1000).all() and (times < (column + 1) * 1000).all()
        assert (np.diff(times) >= 0).all()


def test_darkening_gives_negative_events_and_the_refractory_period_drops_some():
    rng = np.random.default_rng(0)
    bright, dark = log_intensity(edge_frame(20)), log_intensity(edge_frame(0))
    t, x, y, p = events_between(bright, dark, 0.0, 1000.0, PixelState.start(bright, QUIET, rng), QUIET, rng)
    assert len(t) == 20 * 8 and (p == -1).all()
    slow = SensorModel(**{**QUIET.__dict__, "refractory_us": 300.0})
    t, x, y, p = events_between(bright, dark, 0.0, 1000.0, PixelState.start(bright, slow, rng), slow, rng)
    # 8 crossings spread evenly over 1 ms, at least 300 us apart: 3 per pixel survive
    assert len(t) == 20 * 3


def test_static_scene_without_noise_makes_no_events():
    config = SequenceConfig(scene=SceneConfig(seed=1, speed_mps=0.0, sway_m=0.0, traffic=False, wind_mps=0.0),
                            sensor=QUIET, seconds=0.2)
    sequence = simulate(config)
    assert len(sequence.events) == 0
    assert sequence.frames.shape == (5, 260, 346)


def test_same_seed_same_recording_other_seed_other_recording():
    config = SequenceConfig(scene=SceneConfig(seed=5), seconds=0.12)
    a, b = simulate(config), simulate(config)
    for name in ("t", "x", "y", "p"):
        np.testing.assert_array_equal(getattr(a.events, name), getattr(b.events, name))
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.masks, b.masks)
    c = simulate(SequenceConfig(scene=SceneConfig(seed=6), seconds=0.12))
    assert len(c.events) != len(a.events) or not np.array_equal(c.events.x, a.events.x)


@pytest.fixture(scope="module")
def sequence():
    return simulate(SequenceConfig(scene=SceneConfig(seed=9), seconds=0.2))


@pytest.mark.parametrize("format_name", ["ddd17", "mvsec", "evtools"])
def test_every_layout_reads_back_the_same_events_and_frames(sequence, format_name, tmp_path):
    t0 = 1_500_000_000_000_000
    path = write_recording(sequence, tmp_path / "s.hdf5", format_name, t0)
    with open_recording(path) as rec:
        assert rec.format_name == {"evtools": "evh5"}.get(format_name, format_name)
        events = rec.events()
        first = int(sequence.events.t[0])
        assert rec.t0_us == t0 + first
        np.testing.assert_array_equal(events.t, sequence.events.t - first)
        np.testing.assert_array_equal(events.x, sequence.events.x)
        np.testing.assert_array_equal(events.y, sequence.events.y)
        np.testing.assert_array_equal(events.p, sequence.events.p)
        np.testing.assert_array_equal(rec.frames.t_us, sequence.frame_t_us - first)
        np.testing.assert_array_equal(rec.frames[3], sequence.frames[3])


def test_masks_are_the_scene_classes_at_each_frame_time(sequence):
    scene = Scene.generate(SceneConfig(seed=9))
    for k in (0, 4):
        np.testing.assert_array_equal(sequence.masks[k], scene.render(sequence.frame_t_us[k] / 1e6)[1])
    assert set(np.unique(sequence.masks)) <= set(range(6))


def test_recordings_with_ground_truth_aligned_to_frames(tmp_path):
    paths = simulate_recordings(tmp_path, SimulationSpec(sequences=1, seconds=0.2, format="mvsec", seed=2))
    with open_recording(paths[0]) as rec, h5py.File(tmp_path / "ground_truth" / "seq000.hdf5") as gt:
        np.testing.assert_array_equal(gt["frame_t_us"][:], rec.t0_us + rec.frames.t_us)
        assert gt["masks"].shape == (len(rec.frames), 260, 346)
        assert gt.attrs["ignore_label"] == 255


def test_demo_preset_layout(tmp_path):
    preset = DemoPreset(image_sequences=1, event_sequences=1, test_sequences=1, seconds=0.12)
    manifest = make_demo(tmp_path, preset)
    assert manifest["labelled_images"] == 3
    assert sorted(p.name for p in (tmp_path / "images" / "frames").iterdir()) == [
        "img000_0000.png", "img000_0001.png", "img000_0002.png"]
    assert (tmp_path / "images" / "masks" / "img000_0002.png").exists()
    assert (tmp_path / "events" / "seq000.hdf5").exists() and not (tmp_path / "events" / "ground_truth").exists()
    assert (tmp_path / "test" / "ground_truth" / "seq000.hdf5").exists()


def test_aps_conditions_change_the_frames_never_the_events():
    scene = SceneConfig(seed=5)
    plain = simulate(SequenceConfig(scene=scene, seconds=0.16, aps_segment_s=0.04))
    failing = simulate(SequenceConfig(scene=scene, seconds=0.16, aps_segment_s=0.04,
                                      aps_schedule=("normal", "night", "overexposed", "blur")))
    # one frame per 40 ms segment: the schedule in order
    assert [CONDITION_NAMES[c] for c in failing.conditions] == ["normal", "night", "overexposed", "blur"]
    assert list(plain.conditions) == [CONDITION_NAMES.index("normal")] * 4
    for column in ("t", "x", "y", "p"):
        np.testing.assert_array_equal(getattr(failing.events, column), getattr(plain.events, column))
    np.testing.assert_array_equal(failing.frames[0], plain.frames[0])
    assert failing.frames[1].mean() < plain.frames[1].mean() / 3  # night: dark
    assert (failing.frames[2] == 255).mean() > 0.9  # glare: saturated
    # blur: the same exposure level, less detail (a 40 ms exposure instead of 8 ms)
    assert abs(failing.frames[3].mean() - plain.frames[3].mean()) < 10
    detail = lambda frame: np.abs(np.diff(frame.astype(np.float64), axis=1)).mean()  # noqa: E731
    assert detail(failing.frames[3]) < detail(plain.frames[3])


def test_ground_truth_names_each_frame_condition(tmp_path):
    spec = SimulationSpec(sequences=2, seconds=0.16, format="mvsec", seed=2, aps_schedule=("normal", "night", "blur"),
                          aps_segment_s=0.08)
    simulate_recordings(tmp_path, spec)
    names = []
    for k in range(2):
        with h5py.File(tmp_path / "ground_truth" / f"seq{k:03d}.hdf5") as gt:
            names.append([json.loads(gt.attrs["conditions"])[c] for c in gt["conditions"][:]])
    # two segments of two frames per sequence; the schedule runs on into the next sequence
    assert names == [["normal"] * 2 + ["night"] * 2, ["blur"] * 2 + ["normal"] * 2]


def test_recordings_that_cannot_fit_the_disk_are_refused_before_any_is_written(tmp_path, monkeypatch):
    # --sequences 99999999999 had written recording after recording until the disk was full
    import shutil

    from evtools.errors import ConfigError, InputError

    with pytest.raises(ConfigError, match=r"^sequences must be from 1 to 1000, got 99999999999$"):
        SimulationSpec(sequences=99_999_999_999)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**12, 10**12 - 3 * 10**9, 3 * 10**9))
    with pytest.raises(InputError) as err:
        simulate_recordings(tmp_path / "sim", SimulationSpec(sequences=10, seconds=100))
    # 4 MB a simulated second at least
    assert str(err.value) == f"{tmp_path / 'sim'}: 10 recordings of 100 s need at least 4.0 GB, and 3.0 GB are free there"
    assert not (tmp_path / "sim").exists()
