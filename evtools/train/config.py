"""Student training configurations: frozen dataclasses read from TOML files (pipelines/configs/)
and overridden from the command line with ``section.key=value``."""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from evtools.errors import EvtoolsError, InputError
from evtools.models.deeplab import DeepLabConfig
from evtools.train.common import check_precision

METHODS = ("supervised", "kd-aps", "evdistill")


@dataclass(frozen=True)
class LossWeights:
    """Each term's weight, set so that the terms have comparable magnitudes at the start of
    training on the demo (docs/evdistill.md lists the measured magnitudes)."""

    task: float = 1.0
    distribution: float = 1.0
    affinity: float = 5.0
    reconstruction: float = 5.0  # E2I: L1 to the APS frame
    i2e: float = 10.0  # I2E: L1 to the real event tensor (trains I2E only)
    adversarial: float = 0.0  # > 0 adds the least-squares adversarial term on I2E's output


@dataclass(frozen=True)
class Parts:
    """EvDistill's parts, switched off one at a time for ablations."""

    bmr: bool = True
    distribution: bool = True
    affinity: bool = True


@dataclass(frozen=True)
class Training:
    epochs: int = 8
    batch_size: int = 8
    lr: float = 1e-3  # Adam, decayed by the poly schedule
    weight_decay: float = 1e-4
    crop: list[int] | None = field(default_factory=lambda: [160, 224])  # random training crop [height, width]; [] none
    flip: bool = True
    temperature: float = 2.0
    affinity_nodes: int = 1024
    generator_width: int = 16
    generator_lr: float = 5e-4  # Adam for I2E (its own optimiser, constant rate)
    threads: int = 0  # torch's intra-op threads; 0: torch's default (all cores)
    precision: str = "fp32"  # or bf16: autocast of the forward passes
    channels_last: bool = False  # models and batches channels-last (faster convolutions on GPUs)
    validation_fraction: float = 0.25  # of the events windows (the last caches or windows), never the test split
    seed: int = 0
    device: str = "cpu"
    workers: int = 0


@dataclass(frozen=True)
class StudentConfig:
    method: str = "evdistill"
    repr: str = "voxel"
    model: DeepLabConfig = field(default_factory=lambda: DeepLabConfig(
        depth=18, width=0.5, in_channels=5, num_classes=6, aspp_channels=64, decoder_channels=64))
    training: Training = field(default_factory=Training)
    weights: LossWeights = field(default_factory=LossWeights)
    parts: Parts = field(default_factory=Parts)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise EvtoolsError(f"unknown method '{self.method}' (known: {', '.join(METHODS)})")
        check_precision(self.training.precision)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> StudentConfig:
        sections = {"model": DeepLabConfig, "training": Training, "weights": LossWeights, "parts": Parts}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise EvtoolsError(f"unknown configuration entries: {', '.join(sorted(unknown))}")
        values = {}
        for key, value in data.items():
            if key in sections:
                names = {f.name for f in dataclasses.fields(sections[key])}
                extra = set(value) - names
                if extra:
                    raise EvtoolsError(f"unknown entries in [{key}]: {', '.join(sorted(extra))}")
                values[key] = sections[key](**value)
            else:
                values[key] = value
        return cls(**values)


def load_config(path: str | Path | None, overrides: list[str] = ()) -> StudentConfig:
    """A TOML file (or the defaults) with ``section.key=value`` overrides (values parsed as TOML)."""
    data = StudentConfig().as_dict()
    if path is not None:
        try:
            loaded = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise InputError(path, "no such configuration file") from None
        except tomllib.TOMLDecodeError as err:
            raise InputError(path, f"not valid TOML ({err})") from None
        for key, value in loaded.items():
            data[key] = {**data[key], **value} if isinstance(value, dict) and isinstance(data.get(key), dict) else value
    for item in overrides:
        key, _, text = item.partition("=")
        if not text:
            raise EvtoolsError(f"--set '{item}': write section.key=value")
        try:
            value = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            value = text  # a bare word: a string
        target = data
        *parents, last = key.split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[last] = value
    return StudentConfig.from_dict(data)


def to_toml(data: dict, prefix: str = "") -> str:
    """A small TOML writer for nested dicts of scalars and lists (the resolved run config)."""
    scalars = [(k, v) for k, v in data.items() if not isinstance(v, dict)]
    tables = [(k, v) for k, v in data.items() if isinstance(v, dict)]
    lines = [f"{k} = {_toml_value([] if v is None else v)}" for k, v in scalars]  # None: an empty list
    for key, value in tables:
        name = f"{prefix}{key}"
        lines += ["", f"[{name}]", to_toml(value, name + ".").strip()]
    return "\n".join(lines).strip() + "\n"


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
