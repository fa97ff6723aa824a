import json

import numpy as np
from cli import run_cli
from conftest import make_events

import evtools
from evtools.io.writers.ddd17 import packets_from_events, write_ddd17
from evtools.io.writers.evh5 import write_evh5
from evtools.io.writers.mvsec import write_mvsec


def test_help_lists_commands_and_version():
    result = run_cli("--help")
    assert result.returncode == 0
    assert "info" in result.stdout and "Show format, sensor" in result.stdout
    result = run_cli("--version")
    assert result.stdout == f"evtools {evtools.__version__}\n"


def test_info_json_on_mvsec(tmp_path):
    events = make_events(1000, span_us=2_000_000)
    frames_t = np.array([0, 500_000, 1_000_000])
    t0 = 1_504_645_177_410_000
    path = write_mvsec(tmp_path / "m.hdf5", [events], t0_us=t0, images=np.zeros((3, 260, 346), np.uint8),
                       images_t_us=frames_t)
    result = run_cli("info", "--json", path)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    n_pos = int((events.p > 0).sum())
    duration = events.t[-1] / 1e6
    assert summary == {
        "path": str(path), "format": "mvsec", "width": 346, "height": 260,
        "n_events": 1000, "n_positive": n_pos, "n_negative": 1000 - n_pos,
        "n_outside_sensor": 0, "n_backwards": 0,
        "t_first_us": t0, "t_last_us": t0 + int(events.t[-1]),
        "duration_s": duration, "event_rate_hz": 1000 / duration,
        "n_frames": 3, "frame_rate_hz": 2.0,
        "first_frame_t_us": t0, "last_frame_t_us": t0 + 1_000_000,
        "n_labels": 0, "signals": [], "positive_fraction": n_pos / 1000,
        "x_range": [int(events.x.min()), int(events.x.max())], "y_range": [int(events.y.min()), int(events.y.max())],
        "signal_samples": [], "truncated_packets": 0,
    }


def test_info_table_on_ddd17_with_signals(tmp_path):
    events = make_events(500)
    path = write_ddd17(tmp_path / "d.hdf5", packets_from_events(events, t0_us=10),
                       signals={"steering_wheel_angle": np.array([[5.0, -3.5]])})
    result = run_cli("info", path)
    assert result.returncode == 0, result.stderr
    assert "ddd17" in result.stdout and "500" in result.stdout and "steering_wheel_angle (1)" in result.stdout
    assert f"x {events.x.min()}..{events.x.max()}, y {events.y.min()}..{events.y.max()}" in result.stdout
    # a clock past 2100 is no date (a simulated recording of seed 10^6 starts in year 33706): shown as it is
    far = write_ddd17(tmp_path / "far.hdf5", packets_from_events(events, t0_us=10**18))
    result = run_cli("info", far)
    assert result.returncode == 0, result.stderr
    assert f"{10**18 + int(events.t[0])} us " in result.stdout and "UTC" not in result.stdout


def test_info_warns_about_dropped_and_backwards_events(tmp_path):
    events = make_events(100, width=400, seed=5)
    t = events.t.copy()
    t[[10, 50]] = t[[9, 49]] - 1  # two timestamps that go backwards
    shuffled = type(events)(t, events.x, events.y, events.p)
    path = write_evh5(tmp_path / "r.h5", [shuffled], width=346, height=260)
    outside = int((events.x >= 346).sum())
    result = run_cli("info", "--json", path)
    assert result.returncode == 0
    summary = json.loads(result.stdout)
    assert summary["n_outside_sensor"] == outside > 0
    lines = result.stderr.splitlines()
    assert f"warning: {path}: {outside} events outside the 346x260 sensor were dropped" in lines
    assert summary["n_backwards"] >= 1
    assert f"warning: {path}: {summary['n_backwards']} timestamps go backwards (kept in file order, not reordered)" in lines
