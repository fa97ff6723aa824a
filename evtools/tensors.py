"""A cache's windows as tensors of one representation: read from the cache's dense array, or
computed from the events it stores (``--repr events``) when it holds no dense array with the
parameters asked for. Both kinds of cache serve training and evaluation through this one reader.
"""

from __future__ import annotations

import numpy as np

from evtools.cache import Cache, CacheArray, CacheAttr, CacheError, repr_array
from evtools.events import Events
from evtools.representations import REPRESENTATIONS, Representation


def resolve_representation(cache: Cache, repr: str | Representation) -> tuple[Representation, bool]:
    """(the representation, whether it is computed from events) for ``repr`` on ``cache``.

    A name takes the cache's dense array of that name whatever its parameters, else the
    representation's default parameters computed from the events; a Representation takes the
    dense array only when its parameters are the same."""
    name = repr if isinstance(repr, str) else repr.name
    if name not in REPRESENTATIONS:
        raise CacheError(cache.path, f"unknown representation '{name}' (known: {', '.join(REPRESENTATIONS)})")
    stored = cache.attrs.get(CacheAttr.REPRESENTATIONS, {}).get(name)
    if stored is not None and cache.has(repr_array(name)) and (isinstance(repr, str) or stored == repr.params()):
        try:
            return REPRESENTATIONS[name].from_params(stored), False
        except (TypeError, ValueError):
            raise CacheError(cache.path, f"'{repr_array(name)}' has parameters this evtools does not know: {stored}") from None
    if cache.has_events:
        return (REPRESENTATIONS[name]() if isinstance(repr, str) else repr), True
    held = ", ".join(cache.representations) or "none"
    other = " with other parameters" if stored is not None else ""
    raise CacheError(cache.path, f"has no '{name}' representation{other} (it has {held}) and stores no events "
                                 "to compute it from (convert with --repr events)")


def require_unstacked(cache: Cache, repr: str | Representation) -> None:
    """The students take one window (C, H, W): a cache converted with --stack (K, S, C, H, W) is
    for sequence models, refused here with its shape."""
    representation, from_events = resolve_representation(cache, repr)
    shape = () if from_events else cache.array(repr_array(representation.name)).shape
    if len(shape) == 5:
        raise CacheError(cache.path, f"holds stacks of sub-windows ({shape[1]} a window, --stack): the students take "
                                     "one window; convert without --stack")


def require_channels(cache: Cache, repr: str | Representation, in_channels: int, network: str) -> None:
    """Refuses windows whose channels are not the network's input channels."""
    representation, _ = resolve_representation(cache, repr)
    if representation.channels != in_channels:
        raise CacheError(cache.path, f"its '{representation.name}' windows have {representation.channels} channels, "
                                     f"{network} takes {in_channels}")


def representation_batch(representation: Representation, windows: list[Events], ends_us: np.ndarray,
                         width: int, height: int, device: str = "cpu", out: np.ndarray | None = None) -> np.ndarray:
    """(K, C, H, W) of ``representation`` for K windows' events, in one kernel launch."""
    lengths = np.array([len(w) for w in windows], np.int64)
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    events = Events.concatenate(windows)
    extra = {"ends_us": np.asarray(ends_us, np.int64)} if representation.uses_window_end else {}
    return representation.batch(events.t, events.x, events.y, events.p, np.column_stack([bounds[:-1], bounds[1:]]),
                                width, height, device, out=out, **extra)


class WindowTensors:
    """One representation of a cache's windows, indexed by window (an int or a slice)."""

    def __init__(self, cache: Cache, repr: str | Representation):
        self.cache = cache
        self.representation, self.from_events = resolve_representation(cache, repr)
        self.name = repr if isinstance(repr, str) else repr.name

    def __len__(self) -> int:
        return len(self.cache)

    def end_us(self, k: int) -> int:
        """Window ``k``'s end time (the time surface's reference)."""
        return int(self.cache.values(CacheArray.T_END)[k])

    def compute(self, ks: range | list[int]) -> np.ndarray:
        """(K, C, H, W) computed on the CPU from the stored events of windows ``ks``."""
        return representation_batch(self.representation, [self.cache.window_events(k) for k in ks],
                                    np.array([self.end_us(k) for k in ks], np.int64),
                                    self.cache.width, self.cache.height)

    def __getitem__(self, index: int | slice) -> np.ndarray:
        if isinstance(index, slice):
            ks = range(len(self))[index]
            if self.from_events:
                return self.compute(ks)
            if ks.step == 1 or not ks:  # consecutive windows, read together
                return self.cache.windows(repr_array(self.name), ks.start, ks.stop if ks else ks.start)
            return np.stack([self[k] for k in ks])
        k = range(len(self))[index]
        return self.compute([k])[0] if self.from_events else self.cache.window(repr_array(self.name), k)
