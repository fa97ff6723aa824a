"""One simulated sequence: render the scene at a high internal rate, turn the log-intensity
changes into events, expose APS frames (each under the condition its segment of the sequence
has), and keep the class mask at each frame's time."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from evtools.events import Events
from evtools.progress import Progress, report
from evtools.simulate.scene import Scene, SceneConfig
from evtools.simulate.sensor import APS_CONDITIONS, PixelState, SensorModel, aps_frame, events_between, log_intensity

US_PER_S = 1_000_000
CONDITION_NAMES = tuple(APS_CONDITIONS)


def frame_conditions(config: SequenceConfig, frame_t_us: np.ndarray) -> np.ndarray:
    """Each frame's APS condition (index into CONDITION_NAMES) from the schedule."""
    segment = (np.asarray(frame_t_us, np.int64) - 1) // round(config.aps_segment_s * US_PER_S)
    codes = np.array([CONDITION_NAMES.index(name) for name in config.aps_schedule], np.uint8)
    return codes[segment % len(codes)]


@dataclass(frozen=True)
class SequenceConfig:
    scene: SceneConfig = field(default_factory=SceneConfig)
    sensor: SensorModel = field(default_factory=SensorModel)
    seconds: float = 3.0
    frame_rate_hz: float = 25.0
    render_rate_hz: float = 500.0  # the least internal rate; frames fall on renders
    # an interval in which something may move more than this many pixels is halved, at most
    # max_subdivisions times (ESIM's adaptive sampling, with the scene's own flow bound)
    max_px_per_render: float = 3.0
    max_subdivisions: int = 3
    with_events: bool = True  # False: only APS frames and masks (rendered around each frame only)
    # APS conditions (names in sensor.APS_CONDITIONS) of consecutive segments of aps_segment_s,
    # repeated over the sequence: frame k takes the condition of the segment its time falls in
    aps_schedule: tuple[str, ...] = ("normal",)
    aps_segment_s: float = 0.5

    def __post_init__(self) -> None:
        unknown = [name for name in self.aps_schedule if name not in APS_CONDITIONS]
        if unknown or not self.aps_schedule:
            raise ValueError(f"APS conditions must be among {', '.join(APS_CONDITIONS)}, got {', '.join(unknown) or 'none'}")


@dataclass(frozen=True)
class SimulatedSequence:
    events: Events  # t in microseconds of simulated time (which starts at 0)
    frames: np.ndarray  # (M, H, W) uint8
    frame_t_us: np.ndarray  # (M,) int64, end of exposure
    masks: np.ndarray  # (M, H, W) uint8 class ids at each frame's time
    conditions: np.ndarray  # (M,) uint8: each frame's APS condition, an index into CONDITION_NAMES
    renders: int  # internal frames rendered, subdivisions included
    speed_mps: float


def simulate(config: SequenceConfig, progress: Progress | None = None, task: str | None = None) -> SimulatedSequence:
    """Runs the sequence, reporting simulated seconds done of ``task``."""
    steps_per_frame = math.ceil(config.render_rate_hz / config.frame_rate_hz)
    step_us = US_PER_S / config.render_rate_hz
    n_frames = int(config.seconds * config.frame_rate_hz)
    frame_t_us = np.round(np.arange(1, n_frames + 1) * steps_per_frame * step_us).astype(np.int64)
    conditions = frame_conditions(config, frame_t_us)
    # renders averaged into each frame: its exposure, at most the whole frame interval
    exposure_steps = [min(steps_per_frame, max(1, round(config.sensor.aps_exposure_us
                                                        * APS_CONDITIONS[CONDITION_NAMES[c]].exposure / step_us)))
                      for c in conditions]
    scene = Scene.generate(config.scene)
    rng = np.random.default_rng([config.scene.seed, 1])
    frames, masks, chunks = [], [], []
    renders = 0
    exposed: list[np.ndarray] = []
    intensity, classes = scene.render(0.0)
    renders += 1
    log_prev = log_intensity(intensity)
    state = PixelState.start(log_prev, config.sensor, rng)
    total_steps = n_frames * steps_per_frame
    for step in range(1, total_steps + 1):
        frame = (step - 1) // steps_per_frame
        in_exposure = (step - 1) % steps_per_frame >= steps_per_frame - exposure_steps[frame]
        if not config.with_events and not in_exposure:
            continue
        t_us = step * step_us
        intensity, classes = scene.render(t_us / US_PER_S)
        renders += 1
        if config.with_events:
            log_now = log_intensity(intensity)
            renders += _advance(scene, (step - 1) * step_us, log_prev, t_us, log_now, state, config, rng, chunks, 0)
            log_prev = log_now
        if in_exposure:
            exposed.append(intensity)
        if step % steps_per_frame == 0:
            condition = APS_CONDITIONS[CONDITION_NAMES[conditions[frame]]]
            frames.append(aps_frame(np.mean(exposed, axis=0), config.sensor, rng, condition))
            masks.append(classes)
            exposed.clear()
            report(progress, t_us / US_PER_S, config.seconds, task)
    columns = [np.concatenate(c) for c in zip(*chunks)] if chunks else [np.empty(0, d) for d in (np.int64, np.uint16, np.uint16, np.int8)]
    return SimulatedSequence(
        events=Events(*columns),
        frames=np.stack(frames),
        frame_t_us=frame_t_us,
        masks=np.stack(masks),
        conditions=conditions,
        renders=renders,
        speed_mps=config.scene.speed_mps,
    )


def _advance(scene, t0_us, log0, t1_us, log1, state, config, rng, chunks, depth) -> int:
    """Events between two renders, halving the interval while the scene may move more than
    ``max_px_per_render`` pixels in it. Returns the number of extra renders made."""
    moves_px = scene.max_flow_px_s(t0_us / US_PER_S) * (t1_us - t0_us) / US_PER_S
    if depth < config.max_subdivisions and moves_px > config.max_px_per_render:
        t_mid = (t0_us + t1_us) / 2
        log_mid = log_intensity(scene.render(t_mid / US_PER_S)[0])
        extra = 1 + _advance(scene, t0_us, log0, t_mid, log_mid, state, config, rng, chunks, depth + 1)
        return extra + _advance(scene, t_mid, log_mid, t1_us, log1, state, config, rng, chunks, depth + 1)
    chunks.append(events_between(log0, log1, t0_us, t1_us, state, config.sensor, rng))
    return 0
