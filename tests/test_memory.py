"""Reading a 20-million-event MVSEC-layout file chunk by chunk keeps memory bounded.

The (N, 4) float64 events table of that file takes 640 MB (610 MiB); the reading process's peak
RSS stays far below it. Measured on the 2-core development machine: 121 MiB peak, of which 39 MiB
is the interpreter with evtools, numpy and h5py imported (`pytest -s` prints this run's figure).
"""

import subprocess
import sys

import pytest

N_EVENTS = 20_000_000
TABLE_BYTES = N_EVENTS * 4 * 8

WRITE = """
import sys, numpy as np
from evtools.events import Events
from evtools.io.writers.mvsec import write_mvsec
n, chunk = {n}, 1 << 20
def chunks():
    rng = np.random.default_rng(0)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        t = np.arange(start, start + m, dtype=np.int64) // 20  # 20 events per microsecond
        yield Events(t, rng.integers(0, 346, m).astype(np.uint16), rng.integers(0, 260, m).astype(np.uint16),
                     rng.choice(np.array([-1, 1], np.int8), m))
write_mvsec(sys.argv[1], chunks(), t0_us=1_504_645_177_410_000, n_events={n_events})
"""

# Peak RSS from VmHWM, not getrusage: Linux carries ru_maxrss across exec, so a child of a large
# test process would report its parent's size.
READ = """
import sys
from evtools.io import open_recording

def status(field):
    return int(dict(line.split(":", 1) for line in open("/proc/self/status"))[field].split()[0]) * 1024

# the code's own size (Numba and LLVM, loaded with the first chunk's decoding) is not the data's
with open_recording(sys.argv[1]) as rec:
    next(rec.chunks(chunk_events=1000))
baseline = status("VmRSS")
count = positive = 0
with open_recording(sys.argv[1]) as rec:
    for events in rec.chunks():
        count += len(events)
        positive += int((events.p > 0).sum())
        last = int(events.t[-1])
print(count, last, status("VmHWM") - baseline)
"""


@pytest.mark.parametrize("layout", ["chunked", "contiguous"])
def test_chunked_reading_of_20M_events_stays_far_below_the_table_size(tmp_path, layout):
    """Both table layouts: chunks read through h5py, a contiguous table mapped from the file a block at a time."""
    path = tmp_path / "big_data.hdf5"
    n_events = N_EVENTS if layout == "contiguous" else None
    subprocess.run([sys.executable, "-c", WRITE.format(n=N_EVENTS, n_events=n_events), str(path)], check=True,
                   timeout=300)
    result = subprocess.run([sys.executable, "-c", READ, str(path)], check=True, capture_output=True, text=True,
                            timeout=300)
    count, last, peak_growth = map(int, result.stdout.split())
    assert count == N_EVENTS and last == (N_EVENTS - 1) // 20
    assert peak_growth < TABLE_BYTES / 4, f"peak RSS grew {peak_growth / 2**20:.0f} MiB for a {TABLE_BYTES / 2**20:.0f} MiB table"
    print(f"peak RSS grew {peak_growth / 2**20:.0f} MiB while reading a {TABLE_BYTES / 2**20:.0f} MiB events table")
