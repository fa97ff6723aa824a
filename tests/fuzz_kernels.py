"""Property tests of the representations, run in a child process by test_fuzz.py so that a crash
(a segfault in a kernel) fails that test instead of killing pytest.

- any sorted stream and any windows: the CPU kernels equal the numpy references;
- any stream at all (times unsorted, NaN or infinite, coordinates anywhere, parameters out of
  range): a result equal to the reference, or ValueError; never a crash, never another error.

Usage: python fuzz_kernels.py EXAMPLES. Prints the outcome counts as JSON on its last line.
"""

import json
import os
import sys
from collections import Counter

os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import numpy as np  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from evtools import representations as R  # noqa: E402
from evtools.kernels import reference  # noqa: E402

W, H = 7, 5
EXAMPLES = int(sys.argv[1]) if __name__ == "__main__" and len(sys.argv) > 1 else 100
# derandomized: CI sees the same examples every run; a failure is reproducible
FUZZ = settings(deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=True,
                max_examples=EXAMPLES)
OUTCOMES: Counter = Counter()
REFERENCES = {"voxel": reference.voxel_grid, "histogram": reference.histogram, "evimage": reference.evimage,
              "evsegnet": reference.evsegnet, "timesurface": reference.timesurface}


def representation(draw_params) -> R.Representation:
    name, params = draw_params
    return R.REPRESENTATIONS[name](**params)


params = st.one_of(
    st.tuples(st.just("voxel"), st.fixed_dictionaries({"bins": st.integers(1, 6), "normalize": st.booleans(),
                                                       "separate_polarity": st.booleans()})),
    st.tuples(st.just("histogram"), st.fixed_dictionaries({"bins": st.integers(1, 4), "cutoff": st.integers(0, 255)})),
    st.tuples(st.just("evimage"), st.just({})),
    st.tuples(st.just("evsegnet"), st.just({})),
    st.tuples(st.just("timesurface"), st.fixed_dictionaries({"tau_us": st.floats(1.0, 1e6)})),
)


@st.composite
def sorted_streams(draw):
    n = draw(st.integers(0, 60))
    t = np.sort(np.array(draw(st.lists(st.integers(0, 5_000), min_size=n, max_size=n)), np.int64))
    x = np.array(draw(st.lists(st.integers(0, W - 1), min_size=n, max_size=n)), np.int64)
    y = np.array(draw(st.lists(st.integers(0, H - 1), min_size=n, max_size=n)), np.int64)
    p = np.array(draw(st.lists(st.sampled_from([-1, 1]), min_size=n, max_size=n)), np.int8)
    k = draw(st.integers(1, 4))
    starts = draw(st.lists(st.integers(0, n), min_size=k, max_size=k))
    windows = np.array([[s, draw(st.integers(s, n))] for s in starts], np.int64)
    return t, x, y, p, windows


def reference_of(rep, t, x, y, p, windows):
    out = []
    for start, stop in windows:
        args = (t[start:stop], x[start:stop], y[start:stop], p[start:stop], W, H)
        extra = {"t_end_us": int(t[stop - 1]) if stop > start else 0} if rep.name == "timesurface" else {}
        out.append(REFERENCES[rep.name](*args, **rep.params(), **extra))
    return np.stack(out)


@FUZZ
@given(params, sorted_streams())
def kernels_equal_the_references(chosen, stream):
    rep = representation(chosen)
    t, x, y, p, windows = stream
    got = rep.batch(t, x, y, p, windows, W, H)
    np.testing.assert_allclose(got, reference_of(rep, t, x, y, p, windows).astype(got.dtype), rtol=1e-5, atol=1e-5)
    OUTCOMES["sorted: equal to the reference"] += 1


bad_times = st.one_of(
    st.lists(st.integers(-2**40, 2**40), min_size=1, max_size=40).map(lambda v: np.array(v, np.int64)),
    st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=40).map(lambda v: np.array(v, np.float64)),
)


@st.composite
def any_streams(draw):
    t = draw(bad_times)
    n = len(t)
    coordinate = st.integers(-3, 12)
    x = np.array(draw(st.lists(coordinate, min_size=n, max_size=n)), np.int64)
    y = np.array(draw(st.lists(coordinate, min_size=n, max_size=n)), np.int64)
    p = np.array(draw(st.lists(st.sampled_from([-1, 0, 1, 2]), min_size=n, max_size=n)), np.int64)
    windows = np.array(draw(st.lists(st.tuples(st.integers(-1, n + 1), st.integers(-1, n + 1)), min_size=1, max_size=3)))
    return t, x, y, p, windows


bad_params = st.one_of(
    params,
    st.tuples(st.just("voxel"), st.fixed_dictionaries({"bins": st.integers(-3, 0)})),
    st.tuples(st.just("histogram"), st.fixed_dictionaries({"cutoff": st.integers(-5, 400)})),
    st.tuples(st.just("timesurface"), st.fixed_dictionaries({"tau_us": st.floats(allow_nan=True, allow_infinity=True)})),
)


@FUZZ
@given(bad_params, any_streams())
def anything_else_is_a_result_or_a_value_error(chosen, stream):
    try:
        rep = representation(chosen)
        t, x, y, p, windows = stream
        got = rep.batch(t, x, y, p, windows, W, H)
    except ValueError:
        OUTCOMES["any: ValueError"] += 1
        return
    with np.errstate(invalid="ignore"):  # times outside the windows are never read
        expected = reference_of(rep, np.asarray(t, np.int64), x, y, np.where(p > 0, 1, -1), windows)
    np.testing.assert_allclose(got, expected.astype(got.dtype), rtol=1e-5, atol=1e-5)
    OUTCOMES["any: accepted, equal to the reference"] += 1


if __name__ == "__main__":
    for test in (kernels_equal_the_references, anything_else_is_a_result_or_a_value_error):
        test()
    print(json.dumps(dict(OUTCOMES)))
