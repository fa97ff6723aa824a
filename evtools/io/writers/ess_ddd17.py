"""Writes the ESS DDD17 segmentation layout (described in io/ess_ddd17.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from evtools.events import Events
from evtools.io.images import write_picture
from evtools.io.writers import written_atomically

INDEX_WINDOWS_MS = (10, 50, 250)
NS_PER_US = 1000


def write_ess_ddd17(
    path: str | Path,
    events: Events,
    *,
    t0_ns: int,
    image_t_us: np.ndarray,
    masks: dict[int, np.ndarray] | None = None,
    images: dict[int, np.ndarray] | None = None,
) -> Path:
    """Writes a directory. ``image_t_us`` are relative times of images 1..K; ``masks`` and
    ``images`` map 1-based image numbers to uint8 arrays written as PNGs."""
    t_ns = t0_ns + events.t * NS_PER_US
    image_ns = t0_ns + np.asarray(image_t_us, np.int64) * NS_PER_US
    with written_atomically(path) as partial:
        (partial / "index").mkdir(parents=True)
        t_ns.astype(np.int64).tofile(partial / "events.dat.t")
        np.column_stack([events.x, events.y, (events.p > 0)]).astype(np.int16).tofile(partial / "events.dat.xyp")
        for window_ms in INDEX_WINDOWS_MS:
            index = np.column_stack(
                [
                    image_ns,
                    np.searchsorted(t_ns, image_ns, side="left"),
                    np.searchsorted(t_ns, image_ns - window_ms * 1_000_000, side="left"),
                ]
            ).astype(np.int64)
            np.save(partial / "index" / f"index_{window_ms}ms.npy", index)
        for folder, pattern, series in (
            ("segmentation_masks", "segmentation_{:010d}.png", masks),
            ("imgs", "img_{:08d}.png", images),
        ):
            if series:
                (partial / folder).mkdir()
                for number, image in series.items():
                    write_picture(partial / folder / pattern.format(number), image)
    return Path(path)
