"""One writer at a time: an exclusive ``flock`` on ``NAME.lock`` beside what a command writes (a
cache, a run folder, a checkpoint), which the system releases when the process ends however it
ends (kill -9 included), so a stale lock never blocks."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from evtools.errors import InputError


@contextmanager
def exclusive(path: Path, busy: str) -> Iterator[None]:
    """Held while this process writes ``path``; another process asking for it meanwhile is
    refused with ``InputError(path, busy)``. Only the holder removes the lock file, while it holds
    it; one that locked a file the holder before it had removed meanwhile (it opened it first)
    locks a new one instead, so that two writers never hold locks on two files of the same name."""
    lock_path = path.with_name(path.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        handle = open(lock_path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise InputError(path, busy) from None
        if _same_file(handle, lock_path):
            break
        handle.close()
    try:
        yield
    finally:
        lock_path.unlink(missing_ok=True)
        handle.close()


def _same_file(handle, path: Path) -> bool:
    """Whether ``path`` still names the file open as ``handle``."""
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(handle.fileno())
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)
