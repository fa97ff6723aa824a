"""The real-dataset pipelines (make ddd17, make mvsec) run end to end on simulated recordings
written in those layouts, with tiny networks. Slow: run by make test-all."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from evtools.models.checkpoint import save_checkpoint
from evtools.models.deeplab import DeepLabConfig, DeepLabV3Plus
from evtools.simulate import SimulationSpec, simulate_recordings, write_labelled_images

ROOT = Path(__file__).resolve().parents[1]
TINY_CONFIG = """
method = "evdistill"
repr = "voxel"
[model]
depth = 18
width = 0.25
in_channels = 5
num_classes = 6
aspp_channels = 8
decoder_channels = 8
[training]
epochs = 1
batch_size = 2
crop = [64, 96]
generator_width = 4
affinity_nodes = 64
"""


@pytest.mark.slow
@pytest.mark.parametrize("dataset, layout", [("ddd17", "ddd17"), ("mvsec", "mvsec")])
def test_dataset_pipeline_on_simulated_recordings(tmp_path, dataset, layout):
    recordings = tmp_path / "recordings"
    simulate_recordings(recordings, SimulationSpec(sequences=2, seconds=0.4, format=layout, seed=7))
    write_labelled_images(tmp_path / "images", SimulationSpec(sequences=1, seconds=0.4, seed=8))
    teacher = save_checkpoint(tmp_path / "teacher.pt", DeepLabV3Plus(DeepLabConfig(
        depth=18, width=0.25, in_channels=1, num_classes=6, aspp_channels=8, decoder_channels=8)).eval())
    (tmp_path / "tiny.toml").write_text(TINY_CONFIG)
    upper = dataset.upper()
    command = [
        "make", "-C", str(ROOT), dataset, "STAMP=", f"BIN={Path(sys.executable).parent}",
        f"{upper}_ROOT={recordings}", f"{upper}_TRAIN=seq000.hdf5", f"{upper}_TEST=seq001.hdf5",
        f"TEACHER={teacher}", f"IMAGES={tmp_path / 'images'}", f"DATASET_CONFIG={tmp_path / 'tiny.toml'}",
        f"DATASET_RUN={tmp_path / 'runs'}", f"GROUND_TRUTH={recordings / 'ground_truth'}",
        "TEACHER_ARGS=--scales 1.0 --no-flip",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for method in ("supervised", "kd-aps", "evdistill"):
        metrics = json.loads((tmp_path / "runs" / dataset / method / "eval" / "metrics.json").read_text())
        assert metrics["truth"] == "gt_labels" and metrics["windows"] == 10
    cache_info = subprocess.run([sys.executable, "-m", "evtools", "info", "--json",
                                 str(tmp_path / "runs" / dataset / "caches" / "test" / "seq001.zarr")],
                                capture_output=True, text=True)
    summary = json.loads(cache_info.stdout)
    assert summary["sensor"]["height"] == (200 if dataset == "ddd17" else 260)
