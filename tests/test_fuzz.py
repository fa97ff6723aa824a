"""Generated inputs in a child process (a crash there fails the test, not pytest): property tests
of the representation kernels (fuzz_kernels.py: make test runs 200 examples of each property,
make test-all 3000) and damaged recordings of every format and damaged caches (fuzz_files.py:
make test 4 seeds, 348 cases; make test-all 25 seeds, 2175 cases)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def run_fuzz(examples: int, script: str = "fuzz_kernels.py", *args) -> dict:
    done = subprocess.run([sys.executable, str(HERE / script), str(examples), *map(str, args)], capture_output=True,
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


def damaged_inputs(first_seed: int, stop_seed: int, folder) -> tuple[dict, list]:
    result = run_fuzz(first_seed, "fuzz_files.py", stop_seed, folder)
    return result["outcomes"], result["defects"]


def test_damaged_recordings_and_caches(tmp_path):
    outcomes, defects = damaged_inputs(0, 4, tmp_path)
    assert defects == []
    formats = {name.split(":")[0].split(" ")[0] for name in outcomes}
    assert {"evh5", "mvsec", "mvsec_contiguous", "ddd17", "dsec", "aedat4", "rosbag", "dat", "nmnist", "evt2", "evt3",
            "cache"} <= formats
    assert sum(outcomes.values()) >= 100
    assert sum(v for k, v in outcomes.items() if k.endswith("one-line error")) > 40


@pytest.mark.slow
def test_many_damaged_recordings_and_caches(tmp_path):
    defects = []
    for seed in range(4, 25):  # one child per seed: a hang ends only its own seed
        outcomes, found = damaged_inputs(seed, seed + 1, tmp_path / str(seed))
        assert outcomes, seed
        defects += found
    assert defects == []  # a hang included: the one HDF5 loops on (seed 13) is refused before it reads
