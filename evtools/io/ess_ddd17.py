"""The preprocessed DDD17 segmentation layout used by ESS (Sun et al. 2022), a directory:

- ``events.dat.t``: int64 nanoseconds, a raw memmap, one per event;
- ``events.dat.xyp``: int16 (N, 3) x, y, p with p in {0, 1}, a raw memmap;
- ``index/index_{10,50,250}ms.npy``: (K, 3) int64 rows [t_ns of image j+1, index of the first
  event at or after it, index of the first event of the 10/50/250 ms window before it];
- ``segmentation_masks/*.png``: 200 x 346 labels (the Ev-SegNet crop), numbered from 1, mask n
  belonging to index row n - 1; optional ``imgs/*.png`` APS frames numbered the same way.

Nanoseconds become microseconds relative to the first event, rounded half up.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from evtools.errors import CorruptFileError, MissingDatasetError, first_line
from evtools.io.images import read_grey, read_mask
from evtools.io.recording import ReadOptions, Recording, TimedImages

SENSOR_WIDTH, SENSOR_HEIGHT = 346, 260
INDEX_FILES = ("index/index_50ms.npy", "index/index_10ms.npy", "index/index_250ms.npy")
NS_PER_US = 1000


def matches_dir(path: Path) -> bool:
    return (path / "events.dat.t").is_file()


def image_number(path: Path) -> int:
    """The 1-based number in a name such as ``segmentation_0000000042.png`` or ``img_00000042.png``."""
    number = path.stem.rsplit("_", 1)[-1]
    if not number.isdecimal():
        raise CorruptFileError(path, "not numbered as the layout's images are (segmentation_0000000001.png, "
                                     "img_0000000001.png)")
    return int(number)


class EssDdd17Recording(Recording):
    format_name = "ess_ddd17"

    def __init__(self, path: str | Path, options: ReadOptions = ReadOptions()):
        root = Path(path)
        for name in ("events.dat.t", "events.dat.xyp"):
            if not (root / name).is_file():
                raise MissingDatasetError(path, f"missing file '{name}' required by the ess_ddd17 layout")
        index_file = next((root / name for name in INDEX_FILES if (root / name).is_file()), None)
        if index_file is None:
            raise MissingDatasetError(path, "missing index/index_50ms.npy (or the 10 or 250 ms index)")
        t_bytes, xyp_bytes = (root / "events.dat.t").stat().st_size, (root / "events.dat.xyp").stat().st_size
        n_events = t_bytes // 8
        if t_bytes % 8:
            raise CorruptFileError(path, f"events.dat.t has {t_bytes} bytes, not a whole number of int64 timestamps")
        if xyp_bytes != 6 * n_events:
            raise CorruptFileError(
                path, f"events.dat.t holds {n_events} timestamps but events.dat.xyp has {xyp_bytes} bytes, not {6 * n_events}"
            )
        self._t_ns = np.memmap(root / "events.dat.t", np.int64, "r", shape=(n_events,)) if n_events else np.empty(0, np.int64)
        self._xyp = np.memmap(root / "events.dat.xyp", np.int16, "r", shape=(n_events, 3)) if n_events else np.empty((0, 3), np.int16)
        self._t0_ns = int(self._t_ns[0]) if n_events else 0
        try:
            index = np.load(index_file)
        except (ValueError, EOFError, OSError) as err:  # numpy's errors for a truncated, empty or pickled .npy
            raise CorruptFileError(index_file, f"unreadable index ({first_line(err)})") from None
        if index.ndim != 2 or index.shape[1] < 2 or index.dtype.kind not in "iu":
            raise CorruptFileError(index_file, f"index of {index.dtype} {index.shape}, expected (K, 3) integers")
        image_times = self._relative_us(index[:, 0])
        super().__init__(
            path,
            width=SENSOR_WIDTH,
            height=SENSOR_HEIGHT,
            n_events=n_events,
            t0_us=(self._t0_ns + NS_PER_US // 2) // NS_PER_US,
            frames=_png_series(root / "imgs", image_times, read_grey),
            labels=_png_series(root / "segmentation_masks", image_times, read_mask),
        )

    def _relative_us(self, t_ns: np.ndarray) -> np.ndarray:
        return (np.asarray(t_ns, np.int64) - self._t0_ns + NS_PER_US // 2) // NS_PER_US

    def _read_columns(self, start: int, stop: int) -> tuple[np.ndarray, ...]:
        xyp = np.array(self._xyp[start:stop])
        return self._timestamps(start, stop), xyp[:, 0], xyp[:, 1], xyp[:, 2]

    def _timestamps(self, start: int, stop: int) -> np.ndarray:
        return self._relative_us(self._t_ns[start:stop])

    def index_at_time(self, t_us: int) -> int:
        return int(self.indices_at_times(np.array([t_us]))[0])

    def indices_at_times(self, times_us: np.ndarray, chunk_events: int = 0) -> np.ndarray:
        # relative us >= t_us exactly when t_ns >= t0_ns + 1000 t_us - 500 (the rounding above)
        thresholds = self._t0_ns + NS_PER_US * np.asarray(times_us, np.int64) - NS_PER_US // 2
        return np.searchsorted(self._t_ns, thresholds, side="left").astype(np.int64)


def _png_series(folder: Path, times: np.ndarray, read: Callable[[Path], np.ndarray]) -> TimedImages | None:
    """Numbered PNGs of a folder as TimedImages, image n taking index row n - 1's time; ``read``
    decodes one (grey frames, or masks of class indices)."""
    files = sorted(folder.glob("*.png"), key=image_number) if folder.is_dir() else []
    if not files:
        return None
    numbers = np.array([image_number(f) for f in files])
    if numbers.min() < 1 or numbers.max() > len(times):
        raise CorruptFileError(folder, f"images numbered {numbers.min()}..{numbers.max()}, the index has {len(times)} rows")

    shape = read(files[0]).shape

    def load(i: int) -> np.ndarray:
        image = read(files[i])
        if image.shape != shape:
            raise CorruptFileError(files[i], f"a {image.shape[1]}x{image.shape[0]} image among {shape[1]}x{shape[0]} ones")
        return image

    return TimedImages(len(files), shape, load, lambda: times[numbers - 1])
