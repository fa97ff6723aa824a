"""The event simulator: labelled synthetic driving recordings in the DDD17, MVSEC and evtools
layouts, and the embedded demo dataset (``make_demo``).

Model and parameters: scene.py (the world and its classes), sensor.py (events and APS frames),
sequence.py (the time loop). Documented in docs/simulator.md.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import h5py
import numpy as np

from evtools.errors import EvtoolsError, require
from evtools.io.images import write_picture
from evtools.io.writers import require_free_space, written_atomically
from evtools.io.writers.ddd17 import packets_from_events, write_ddd17
from evtools.io.writers.evh5 import write_evh5
from evtools.io.writers.mvsec import write_mvsec
from evtools.labels import CLASS_NAMES
from evtools.progress import Progress
from evtools.simulate.scene import HEIGHT, ILLUMINATIONS, WIDTH, SceneConfig
from evtools.simulate.sequence import CONDITION_NAMES, SequenceConfig, SimulatedSequence, simulate

FORMATS = ("ddd17", "mvsec", "evtools")
MAX_SECONDS = 120.0  # of one sequence (about 3.6 GB while it is rendered)
MAX_SEQUENCES = 1000  # seq000 to seq999
# less than a simulated second takes on disk in any layout (about 10 MB in DDD17's, 15 in
# evtools', 21 in MVSEC's): a simulation refused for want of it would certainly fill the disk
MIN_BYTES_PER_SECOND = 4_000_000
MAX_FRAME_RATE_HZ = 200.0  # a DAVIS346 takes about 40 APS frames a second at most
GROUND_TRUTH_DIR = "ground_truth"
T0_US = 1_500_000_000_000_000  # the absolute clock of simulated sequence 0 (2017-07-14)
# sequence k of a seed starts (1000 * seed + k) * 10^9 us after T0_US: past this seed, clocks
# leave the ±2^62 us that evtools reads as timestamps
MAX_SEED = 1_000_000
SIGNAL_PERIOD_US = 100_000



@dataclass(frozen=True)
class SimulationSpec:
    sequences: int = 1
    seconds: float = 3.0
    format: str = "ddd17"
    seed: int = 0
    illumination: str = "mixed"  # one of ILLUMINATIONS, or mixed: day, dusk, high-contrast in turn
    frame_rate_hz: float = 25.0
    with_events: bool = True
    # APS conditions of consecutive segments (sensor.APS_CONDITIONS); the schedule runs on from
    # one sequence to the next, so that each condition falls on every kind of scene
    aps_schedule: tuple[str, ...] = ("normal",)
    aps_segment_s: float = 0.5

    def __post_init__(self) -> None:
        require(1 <= self.sequences <= MAX_SEQUENCES, "sequences", f"from 1 to {MAX_SEQUENCES}", self.sequences)
        # a sequence is rendered in memory, about 30 MB a simulated second: longer stretches are
        # several sequences
        require(0 < self.seconds <= MAX_SECONDS, "seconds", f"above 0 and at most {MAX_SECONDS}", self.seconds)
        require(0 < self.frame_rate_hz <= MAX_FRAME_RATE_HZ, "frame_rate_hz", f"above 0 and at most {MAX_FRAME_RATE_HZ}",
                self.frame_rate_hz)
        require(self.seconds * self.frame_rate_hz >= 1, "seconds", f"at least one frame ({1 / self.frame_rate_hz:g} s "
                f"at {self.frame_rate_hz:g} frames a second)", self.seconds)
        require(0 <= self.seed <= MAX_SEED, "seed", f"from 0 to {MAX_SEED}", self.seed)
        require(self.aps_segment_s > 0, "aps_segment_s", "above 0", self.aps_segment_s)


def sequence_config(spec: SimulationSpec, index: int) -> SequenceConfig:
    seed = spec.seed * 1000 + index
    rng = np.random.default_rng(seed)
    illumination = tuple(ILLUMINATIONS)[index % len(ILLUMINATIONS)] if spec.illumination == "mixed" else spec.illumination
    scene = SceneConfig(seed=seed, speed_mps=float(rng.uniform(7, 13)), sway_m=float(rng.uniform(0.3, 1.2)),
                        illumination=illumination, length_m=max(200.0, 15 * spec.seconds + 150))
    shift = index * math.ceil(spec.seconds / spec.aps_segment_s) % len(spec.aps_schedule)
    schedule = tuple(spec.aps_schedule[shift:]) + tuple(spec.aps_schedule[:shift])
    return SequenceConfig(scene=scene, seconds=spec.seconds, frame_rate_hz=spec.frame_rate_hz, with_events=spec.with_events,
                          aps_schedule=schedule, aps_segment_s=spec.aps_segment_s)


def write_recording(sequence: SimulatedSequence, path: Path, format: str, t0_us: int) -> Path:
    """Writes a simulated sequence in one of the reader layouts (absolute clock from ``t0_us``)."""
    frames_t = sequence.frame_t_us
    if format == "ddd17":
        frames = list(zip(frames_t.tolist(), sequence.frames))
        speed = [[t0_us + t, sequence.speed_mps * 3.6] for t in range(0, int(frames_t[-1]) + 1, SIGNAL_PERIOD_US)]
        return write_ddd17(path, packets_from_events(sequence.events, t0_us=t0_us, frames=frames),
                           signals={"vehicle_speed": np.array(speed)})
    if format == "mvsec":
        return write_mvsec(path, [sequence.events], t0_us=t0_us, images=sequence.frames, images_t_us=frames_t,
                           n_events=len(sequence.events))
    if format == "evtools":
        return write_evh5(path, [sequence.events], width=WIDTH, height=HEIGHT, t0_us=t0_us, frames=sequence.frames,
                          frames_t_us=frames_t)
    raise EvtoolsError(f"unknown simulator output format '{format}' (known: {', '.join(FORMATS)})")


def write_ground_truth(sequence: SimulatedSequence, path: Path, t0_us: int, config: SequenceConfig) -> Path:
    """The class mask at each APS frame's time: ``masks`` (M, H, W) uint8 and ``frame_t_us``
    (M,) int64 on the recording's absolute clock, one per frame of the recording, in order, and
    ``conditions`` (M,) uint8, each frame's APS condition (names in the ``conditions`` attribute)."""
    with written_atomically(path) as partial, h5py.File(partial, "w") as h5:
        h5.create_dataset("masks", data=sequence.masks, chunks=(1, HEIGHT, WIDTH), compression="gzip", compression_opts=1)
        h5.create_dataset("frame_t_us", data=t0_us + sequence.frame_t_us)
        h5.create_dataset("conditions", data=sequence.conditions)
        h5.attrs.update(evtools_format="ground-truth", evtools_format_version=1, classes=json.dumps(CLASS_NAMES),
                        ignore_label=255, conditions=json.dumps(CONDITION_NAMES), config=json.dumps(asdict(config)))
    return path


def simulate_recordings(out: str | Path, spec: SimulationSpec, progress: Progress | None = None,
                        name_prefix: str = "seq", ground_truth: bool = True,
                        on_sequence: Callable[[str, SimulatedSequence], None] | None = None) -> list[Path]:
    """``spec.sequences`` recordings in ``out``, with their ground truth in ``out/ground_truth``;
    ``on_sequence(name, sequence)`` sees each simulated sequence (for previews)."""
    out = Path(out)
    # a lower bound of their size
    require_free_space(out, spec.sequences * spec.seconds * MIN_BYTES_PER_SECOND,
                       f"{spec.sequences} recordings of {spec.seconds:g} s")
    paths = []
    for index in range(spec.sequences):
        name = f"{name_prefix}{index:03d}"
        config = sequence_config(spec, index)
        sequence = simulate(config, progress, name)
        t0_us = T0_US + (spec.seed * 1000 + index) * 1_000_000_000
        paths.append(write_recording(sequence, out / f"{name}.hdf5", spec.format, t0_us))
        if ground_truth:
            write_ground_truth(sequence, out / GROUND_TRUTH_DIR / f"{name}.hdf5", t0_us, config)
        if on_sequence:
            on_sequence(name, sequence)
    return paths


def write_labelled_images(out: str | Path, spec: SimulationSpec, progress: Progress | None = None,
                          name_prefix: str = "img") -> int:
    """APS frames and their masks as PNG pairs ``frames/NAME.png`` and ``masks/NAME.png``."""
    out = Path(out)
    (out / "frames").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    count = 0
    for index in range(spec.sequences):
        name = f"{name_prefix}{index:03d}"
        config = replace(sequence_config(spec, index), with_events=False)
        sequence = simulate(config, progress, name)
        for k, (frame, mask) in enumerate(zip(sequence.frames, sequence.masks)):
            write_picture(out / "frames" / f"{name}_{k:04d}.png", frame)
            write_picture(out / "masks" / f"{name}_{k:04d}.png", mask)
            count += 1
    return count


# Half the frames of the demo's event and test recordings are well exposed; a sixth each is
# taken at night, over-exposed or blurred (segments of 0.5 s in this order, repeating).
DEMO_APS_SCHEDULE = ("normal", "night", "normal", "overexposed", "normal", "blur")


@dataclass(frozen=True)
class DemoPreset:
    """The embedded default dataset: three disjoint groups (seeds apart), for EvDistill's
    unpaired protocol: labelled images (all well exposed), unlabelled event recordings, and
    labelled test recordings, whose APS frames fail in a known share of the windows."""

    image_sequences: int = 8
    event_sequences: int = 4
    test_sequences: int = 3
    seconds: float = 2.0
    format: str = "ddd17"
    seeds: dict = field(default_factory=lambda: {"images": 1, "events": 2, "test": 3})
    aps_schedule: tuple[str, ...] = DEMO_APS_SCHEDULE


def make_demo(out: str | Path, preset: DemoPreset = DemoPreset(), progress: Progress | None = None) -> dict:
    """Writes ``out/images`` (PNG pairs), ``out/events`` and ``out/test`` (recordings, the test
    ones with ground truth) and ``out/manifest.json``; returns the manifest."""
    out = Path(out)
    images = write_labelled_images(
        out / "images", SimulationSpec(preset.image_sequences, preset.seconds, seed=preset.seeds["images"]), progress
    )
    groups = {}
    for group, count in (("events", preset.event_sequences), ("test", preset.test_sequences)):
        spec = SimulationSpec(count, preset.seconds, preset.format, seed=preset.seeds[group],
                              aps_schedule=preset.aps_schedule)
        # the unlabelled group gets no ground truth, as real unlabelled recordings have none
        groups[group] = [p.name for p in simulate_recordings(out / group, spec, progress, ground_truth=group == "test")]
    manifest = {"preset": asdict(preset), "labelled_images": images, **groups, "classes": list(CLASS_NAMES)}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def preview_picture(sequence: SimulatedSequence, frame_index: int, window_us: int = 50_000) -> np.ndarray:
    """APS frame, the events of the ``window_us`` before it (red positive, blue negative) and the
    class mask, side by side (BGR)."""
    from evtools.render import events_picture, labels_picture, side_by_side

    end = int(sequence.frame_t_us[frame_index])
    events = sequence.events
    window = (events.t >= end - window_us) & (events.t < end)
    positive = np.zeros((HEIGHT, WIDTH), np.float32)
    negative = np.zeros((HEIGHT, WIDTH), np.float32)
    np.add.at(positive, (events.y[window & (events.p > 0)], events.x[window & (events.p > 0)]), 1)
    np.add.at(negative, (events.y[window & (events.p < 0)], events.x[window & (events.p < 0)]), 1)
    frame = np.repeat(sequence.frames[frame_index][..., None], 3, axis=2)
    return side_by_side([frame, events_picture(positive, negative), labels_picture(sequence.masks[frame_index])])
