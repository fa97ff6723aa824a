"""Generated inputs in a child process (a crash there fails the test, not pytest): property tests
of the representation kernels (fuzz_kernels.py). make test runs 200 examples of each property,
make test-all 3000."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def run_fuzz(examples: int) -> dict:
    done = subprocess.run([sys.executable, str(HERE / "fuzz_kernels.py"), str(examples)], capture_output=True,
                          text=True, timeout=1800, cwd=HERE)
    assert done.returncode == 0, f"exit {done.returncode} (a negative one is a signal: a crash)\n{done.stderr[-3000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_kernels_on_generated_streams():
    outcomes = run_fuzz(200)
    assert outcomes["sorted: equal to the reference"] == 200
    assert outcomes["any: ValueError"] + outcomes["any: accepted, equal to the reference"] == 200
    assert outcomes["any: ValueError"] > 100  # most generated streams are bad ones


@pytest.mark.slow
def test_kernels_on_many_generated_streams():
    outcomes = run_fuzz(3000)
    assert outcomes["sorted: equal to the reference"] == 3000
