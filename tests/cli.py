"""Runs the real console entry point in a subprocess, as a user would."""

import subprocess
import sys


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "evtools", *map(str, args)], capture_output=True, text=True, timeout=120
    )
