"""evtools: event-camera recordings to cached tensors, pseudo-labels and EvDistill students."""

import os
import tempfile
from pathlib import Path

__version__ = "0.1.0"


def _numba_cache_dir() -> None:
    """Numba caches compiled kernels beside their sources or under the user's cache folder, and
    refuses to define a cached function when it can write neither (a read-only install with no
    writable home). Then the system's temporary folder holds the cache instead."""
    if "NUMBA_CACHE_DIR" in os.environ:
        return
    try:
        home = Path.home()
    except (RuntimeError, KeyError):  # no HOME and no password entry
        home = None
    candidates = [Path(__file__).parent] + ([Path(os.environ.get("XDG_CACHE_HOME", home / ".cache")), home] if home else [])
    writable = [p for p in candidates if os.access(p, os.W_OK)]
    if not writable:
        os.environ["NUMBA_CACHE_DIR"] = str(Path(tempfile.gettempdir()) / f"evtools-numba-{os.getuid()}")


_numba_cache_dir()
