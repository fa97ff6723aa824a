"""Every command with --device cuda on the demo data in miniature, on a real GPU (torch and
numba.cuda, not the simulator). Skipped on machines without one, so CI never runs it: run it
with `make gpu-check` on a GPU machine."""

import os

import numpy as np
import pytest
import zarr
from cli import run_cli

from evtools.simulate import SimulationSpec, write_labelled_images

pytestmark = pytest.mark.skipif(
    os.environ.get("EVTOOLS_GPU_TESTS") != "1",
    reason="GPU tests run only with EVTOOLS_GPU_TESTS=1 (make gpu-check), on a machine with a CUDA GPU",
)
REAL_CUDA = {"NUMBA_ENABLE_CUDASIM": "0"}
STUDENT = ["--config", "pipelines/configs/student-cpu.toml", "--epochs", "1", "--set", "training.validation_fraction=0"]


def run(*args):
    result = run_cli(*args, env=REAL_CUDA)
    assert result.returncode == 0, result.stderr
    return result


def test_every_command_on_cuda(tmp_path):
    import torch

    assert torch.cuda.is_available()
    data = tmp_path / "data"
    run("simulate", data / "events", "--sequences", "1", "--seconds", "0.6", "--aps-schedule", "normal,night")
    images = tmp_path / "images"
    write_labelled_images(images, SimulationSpec(1, 0.6, seed=1))
    cache = tmp_path / "events.zarr"
    run("convert", data / "events" / "seq000.hdf5", "-o", cache, "--device", "cuda",
        "--ground-truth", data / "events" / "ground_truth")
    run("convert", data / "events" / "seq000.hdf5", "-o", tmp_path / "cpu.zarr", "--device", "cpu")
    np.testing.assert_allclose(zarr.open_group(cache)["repr/voxel"][:], zarr.open_group(tmp_path / "cpu.zarr")["repr/voxel"][:],
                               rtol=1e-5, atol=1e-5)
    teacher = tmp_path / "teacher.pt"
    run("train", "teacher", images, "-o", teacher, "--epochs", "1", "--device", "cuda", "--precision", "bf16",
        "--channels-last")
    run("pseudolabel", cache, "--teacher", teacher, "--device", "cuda")
    for method in ("supervised", "kd-aps", "evdistill"):
        out = tmp_path / method
        run("train", "student", "--method", method, "--events", cache, "--images", images, "--teacher", teacher,
            "-o", out, "--device", "cuda", *STUDENT)
        run("train", "student", "--resume", "--events", cache, "--images", images, "--teacher", teacher, "-o", out,
            "--epochs", "2", "--device", "cuda")
        run("eval", out / "best.pt", "--events", cache, "--device", "cuda", "-o", out / "eval")


def test_representations_computed_per_batch_on_the_gpu_equal_the_cpu(tmp_path):
    """An events cache read with ``batch_device="cuda"`` (in-process: the kernels on the real GPU)."""
    import subprocess
    import sys

    script = """
import sys, numpy as np, torch
from evtools.data import CacheDataset
from evtools.representations import VoxelGrid, TimeSurface
for rep in (VoxelGrid(), TimeSurface()):
    gpu = CacheDataset(sys.argv[1], repr=rep, batch_device="cuda")
    batch = gpu.collate([gpu[k] for k in range(4)])
    assert batch["events"].device.type == "cuda"
    cpu = torch.stack([CacheDataset(sys.argv[1], repr=rep)[k]["events"] for k in range(4)])
    torch.testing.assert_close(batch["events"].cpu(), cpu, rtol=1e-5, atol=1e-5)
"""
    data = tmp_path / "data"
    run("simulate", data, "--sequences", "1", "--seconds", "0.4")
    run("convert", data / "seq000.hdf5", "-o", tmp_path / "ev", "--repr", "events")
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path / "ev.zarr")], capture_output=True, text=True,
                            env={**os.environ, **REAL_CUDA})
    assert result.returncode == 0, result.stderr
