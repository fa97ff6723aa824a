"""A recording's content key: what a cache's key says it was made from."""

from __future__ import annotations

import hashlib
from pathlib import Path

FINGERPRINT_SAMPLE = 1 << 20


def fingerprint(path: str | Path) -> str:
    """sha256 of a file's size and its first and last MiB, or of every file of a directory so
    (names included): a content key that survives copies and renames and costs little."""
    root = Path(path)
    files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
    digest = hashlib.sha256()
    for file in files:
        size = file.stat().st_size
        digest.update(f"{file.relative_to(root) if root.is_dir() else ''}:{size}".encode())
        with open(file, "rb") as handle:
            digest.update(handle.read(FINGERPRINT_SAMPLE))
            if size > FINGERPRINT_SAMPLE:
                handle.seek(max(size - FINGERPRINT_SAMPLE, FINGERPRINT_SAMPLE))
                digest.update(handle.read())
    return digest.hexdigest()


def source_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size
