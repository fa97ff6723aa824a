import os

# The CUDA kernels run on Numba's CUDA simulator unless the environment asks for a real GPU
# (NUMBA_ENABLE_CUDASIM=0). Numba reads this when it is first imported, so it is set here.
os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import numpy as np
import pytest

from evtools.events import Events


def make_events(n: int = 2000, width: int = 346, height: int = 260, span_us: int = 1_000_000, seed: int = 0) -> Events:
    """Sorted random events starting at t = 0."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, span_us, n)).astype(np.int64)
    t -= t[0]
    return Events(
        t,
        rng.integers(0, width, n).astype(np.uint16),
        rng.integers(0, height, n).astype(np.uint16),
        rng.choice(np.array([-1, 1], np.int8), n),
    )


def assert_same_events(actual: Events, expected: Events) -> None:
    for name in ("t", "x", "y", "p"):
        np.testing.assert_array_equal(getattr(actual, name), getattr(expected, name), err_msg=name)
        assert getattr(actual, name).dtype == getattr(expected, name).dtype


@pytest.fixture
def events() -> Events:
    return make_events()
