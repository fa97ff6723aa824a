"""The errors evtools raises on purpose. The CLI turns each into one line and exit code 2."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np


class EvtoolsError(Exception):
    """Base class of every deliberate evtools error; its message is one line."""


class InputError(EvtoolsError):
    """A file or directory given to evtools cannot be used; the message names it."""

    def __init__(self, path: str | Path, problem: str):
        self.path = path if isinstance(path, Path) or "://" in str(path) else Path(path)  # a URL stays as it is
        self.problem = problem
        super().__init__(f"{path}: {problem}")

    def __reduce__(self):  # pickled back from a worker process (convert --jobs) with both arguments
        return type(self), (self.path, self.problem)


class UnknownFormatError(InputError):
    """No supported format matches the file's content."""


class MissingDatasetError(InputError):
    """A file of a known format lacks a dataset the format requires."""


class CorruptFileError(InputError):
    """The file is unreadable, truncated, or contradicts its own headers."""


class MissingExtraError(EvtoolsError):
    """An optional dependency needed for this input is not installed."""


class ConfigError(EvtoolsError, ValueError):
    """A configuration value (a model's, a training's) out of its range or of the wrong type."""


def require(condition: bool, name: str, rule: str, value: object) -> None:
    """Refuses a configuration value: ``name must be rule, got value``."""
    if not condition:
        raise ConfigError(f"{name} must be {rule}, got {value!r}")


def is_whole(value: object) -> bool:
    """An int, numpy's included, that is not a bool (which Python counts as one)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def require_at_least(owner: object, low: float, names: Iterable[str]) -> None:
    """``require`` that each attribute ``names`` of ``owner`` is at least ``low``."""
    for name in names:
        value = getattr(owner, name)
        require(value >= low, name, f"at least {low}", value)


def first_line(err: BaseException) -> str:
    return str(err).splitlines()[0] if str(err) else type(err).__name__


@contextmanager
def reading(path: str | Path) -> Iterator[None]:
    """Turns a failed read inside a file that opened (a truncated dataset, a bad chunk) into one line."""
    try:
        yield
    except (OSError, RuntimeError) as err:  # h5py raises RuntimeError for damaged metadata
        raise CorruptFileError(path, f"unreadable data ({first_line(err)})") from err


@contextmanager
def damaged_structure(path: str | Path) -> Iterator[None]:
    """Opening a file whose internal structure is damaged: HDF5's B-trees and symbol tables fail
    with RuntimeError, KeyError or OSError from deep inside h5py; one line instead."""
    try:
        yield
    except EvtoolsError:
        raise
    except (OSError, RuntimeError, KeyError) as err:
        raise CorruptFileError(path, f"damaged file structure ({type(err).__name__}: {first_line(err)})") from err
