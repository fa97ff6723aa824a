"""Student training configurations: frozen dataclasses read from TOML files (pipelines/configs/)
and overridden from the command line with ``section.key=value``."""

from __future__ import annotations

import dataclasses
import math
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path

from evtools.errors import ConfigError, EvtoolsError, InputError, first_line, require, require_at_least
from evtools.models.deeplab import DeepLabConfig
from evtools.train.common import check_precision, check_seed

METHODS = ("supervised", "kd-aps", "evdistill")
MAX_THREADS = 1024  # torch's intra-op threads (99999999999 overflowed its int)


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

    def __post_init__(self) -> None:
        require_at_least(self, 0, (entry.name for entry in dataclasses.fields(self)))


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

    def __post_init__(self) -> None:
        require_at_least(self, 1, ("epochs", "batch_size", "affinity_nodes", "generator_width"))
        require_at_least(self, 0, ("workers", "weight_decay"))
        require(0 <= self.threads <= MAX_THREADS, "threads", f"from 0 to {MAX_THREADS}", self.threads)
        for name in ("lr", "generator_lr", "temperature"):
            require(getattr(self, name) > 0, name, "above 0", getattr(self, name))
        require(0 <= self.validation_fraction < 1, "validation_fraction", "in [0, 1)", self.validation_fraction)
        check_seed(self.seed)
        require(not self.crop or (len(self.crop) == 2 and min(self.crop) >= 1), "crop",
                "[] (no crop) or [height, width] of at least 1", self.crop)


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
                if not isinstance(value, dict):
                    raise EvtoolsError(f"configuration entry '{key}' must be a [{key}] table, got {value!r}")
                names = {f.name for f in dataclasses.fields(sections[key])}
                extra = set(value) - names
                if extra:
                    raise EvtoolsError(f"unknown entries in [{key}]: {', '.join(sorted(extra))}")
                values[key] = _typed(sections[key], value, f"{key}.")
            else:
                values[key] = value
        return _typed(cls, values, "")


def _typed(cls, values: dict, prefix: str):
    """``cls(**values)`` once each value has its field's type (a whole number where a float is
    asked for is taken), its range checked by ``cls``; a one-line error naming the entry."""
    hints = typing.get_type_hints(cls)
    for name, value in values.items():
        if dataclasses.is_dataclass(hints[name]):
            continue  # a section, checked on its own
        if not _is_a(value, hints[name]):
            raise ConfigError(f"{prefix}{name} must be {_described(hints[name])}, got {value!r}")
    try:
        return cls(**values)
    except ConfigError as err:
        raise ConfigError(f"{prefix}{err}") from None


def _is_a(value, expected) -> bool:
    if expected is bool or expected is str or expected is type(None):
        return isinstance(value, expected)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if typing.get_origin(expected) is list:
        return isinstance(value, list) and all(_is_a(item, typing.get_args(expected)[0]) for item in value)
    return any(_is_a(value, option) for option in typing.get_args(expected))  # a union: X | None


def _described(expected) -> str:
    words = {bool: "true or false", str: "a string", int: "a whole number", float: "a finite number"}
    if typing.get_origin(expected) is list:
        return f"a list of {_described(typing.get_args(expected)[0]).removeprefix('a ')}s"
    return words.get(expected) or " or ".join(_described(option) for option in typing.get_args(expected)
                                              if option is not type(None))  # None: TOML has no null


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
        except (OSError, UnicodeDecodeError) as err:  # a folder, no permission, not text
            raise InputError(path, f"unreadable configuration file ({first_line(err)})") from None
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
            if not isinstance(target, dict):
                raise EvtoolsError(f"--set '{item}': {parent} is not a section")
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
