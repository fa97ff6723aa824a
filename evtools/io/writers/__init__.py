"""Writers for the formats evtools reads, kept apart from the decoders.

The simulator and the tests write recordings through these. Every writer writes under a
temporary name and renames the result into place once complete, so a crash leaves no file
that looks finished.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from evtools.errors import InputError


@contextmanager
def written_atomically(path: str | Path) -> Iterator[Path]:
    """Yields a temporary path beside ``path``; renames it to ``path`` when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    _remove(partial)
    try:
        yield partial
    except BaseException:
        _remove(partial)
        raise
    _remove(path)
    os.replace(partial, path)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def require_free_space(path: Path, need: float, what: str) -> None:
    """Refuses output at ``path`` that ``need``s more bytes than the free disk under it has:
    ``what`` names the output ("20 windows", "3 recordings of 120 s")."""
    folder = next(p for p in (path.absolute(), *path.absolute().parents) if p.exists())
    free = shutil.disk_usage(folder).free
    if need > free:
        raise InputError(path, f"{what} need at least {need / 1e9:.1f} GB, and {free / 1e9:.1f} GB are free there")
