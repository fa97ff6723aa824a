"""Runs the real console entry point in a subprocess, as a user would."""

import os
import subprocess
import sys


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``env`` adds to (or overrides) this process's environment."""
    return subprocess.run(
        [sys.executable, "-m", "evtools", *map(str, args)], capture_output=True, text=True, timeout=120,
        env={**os.environ, **env} if env else None,
    )
