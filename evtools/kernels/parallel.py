"""The one lock around evtools' parallel Numba code."""

from __future__ import annotations

import threading

# Held around every launch of a ``parallel=True`` function of evtools. The CPU kernels and the
# readers' passes release the GIL (``nogil``), so that a conversion's writer and compressing
# threads run while they work; two Python threads must still not launch parallel code at once:
# Numba's workqueue threading layer (where neither OpenMP nor TBB is found) aborts the process on
# concurrent launches, and each launch already uses every core.
PARALLEL_LAUNCH_LOCK = threading.Lock()
