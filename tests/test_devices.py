"""Devices: the one check every command makes first, every model a run builds placed on the
requested device ("meta" stands in for a GPU on a machine without one: a model left on the CPU
fails these tests), bf16 autocast and channels-last on the CPU, and --device cuda refused in one
line where no GPU is."""

import numpy as np
import pytest
import torch
from cli import run_cli
from conftest import TINY

from evtools.devices import DeviceError, check_device
from evtools.models.deeplab import DeepLabConfig, DeepLabV3Plus
from evtools.train.common import autocast, place, to_device
from evtools.train.config import load_config
from evtools.train.student import StudentInputs, build_models, train_student

NO_TORCH_GPU = not torch.cuda.is_available()


def test_check_device_names():
    assert check_device("cpu") == "cpu"
    for bad in ("gpu", "cuda:x", "CPU", ""):
        with pytest.raises(DeviceError, match=f"--device {bad}: not a device"):
            check_device(bad)


@pytest.mark.skipif(not NO_TORCH_GPU, reason="a GPU is present")
def test_cuda_without_a_gpu_is_one_line():
    with pytest.raises(DeviceError, match=r"^--device cuda: no CUDA GPU is available \(torch .+\)$"):
        check_device("cuda")


@pytest.mark.parametrize("method", ["supervised", "kd-aps", "evdistill"])
def test_every_model_of_a_run_is_built_on_the_requested_device(student_data, method):
    config = load_config(None, TINY + [f'method="{method}"', "weights.adversarial=0.1"])
    student, teacher, evdistill = build_models(config, student_data["teacher"], "meta")
    modules = [m for m in (student, teacher, evdistill) if m is not None]
    assert len(modules) == {"supervised": 1, "kd-aps": 2, "evdistill": 3}[method]
    devices = {t.device.type for m in modules for t in [*m.parameters(), *m.buffers()]}
    assert devices == {"meta"}
    if teacher is not None:
        assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())


def test_channels_last_and_bf16_on_the_cpu():
    config = DeepLabConfig(depth=18, width=0.25, in_channels=2, num_classes=3, aspp_channels=8, decoder_channels=8)
    model = DeepLabV3Plus(config).eval()
    batch = {"events": torch.rand(2, 2, 32, 48), "labels": torch.zeros(2, 32, 48, dtype=torch.long)}
    with torch.no_grad():
        plain = model(batch["events"])["logits"]
        moved = to_device(batch, "cpu", channels_last=True)
        assert moved["events"].is_contiguous(memory_format=torch.channels_last)
        assert moved["labels"].is_contiguous()  # 3-D: left as it is
        fast = place(model, "cpu", channels_last=True)(moved["events"])["logits"]
        torch.testing.assert_close(fast, plain, rtol=1e-4, atol=1e-5)
        with autocast("cpu", "bf16"):
            half = model(batch["events"])["logits"]
    assert half.dtype == torch.bfloat16
    torch.testing.assert_close(half.float(), plain, rtol=0.1, atol=0.1)


def test_student_trains_in_bf16_channels_last(student_data, tmp_path):
    config = load_config(None, TINY + ['method="evdistill"', 'training.precision="bf16"', "training.channels_last=true"])
    metrics = train_student(config, StudentInputs(student_data["caches"], student_data["images"], student_data["teacher"]), tmp_path / "run")
    assert all(np.isfinite(v) for k, v in metrics.items() if k.startswith("loss_"))
    with pytest.raises(Exception, match="--precision: 'fp16' is not one of fp32, bf16"):
        load_config(None, ['training.precision="fp16"'])


@pytest.mark.skipif(not NO_TORCH_GPU, reason="a GPU is present")
def test_commands_refuse_cuda_without_a_gpu_before_writing(student_data, tmp_path):
    cache = student_data["caches"][0]
    recording = student_data["root"] / "a.h5"
    runs = {
        "convert": ["convert", recording, "-o", tmp_path / "out", "--device", "cuda"],
        "pseudolabel": ["pseudolabel", cache, "--teacher", student_data["teacher"], "--device", "cuda"],
        "eval": ["eval", student_data["teacher"], "--events", cache, "--device", "cuda", "-o", tmp_path / "eval"],
        "teacher": ["train", "teacher", student_data["images"], "-o", tmp_path / "t.pt", "--device", "cuda"],
        "student": ["train", "student", "--events", cache, "-o", tmp_path / "run", "--device", "cuda",
                    "--method", "supervised"],
    }
    for name, args in runs.items():
        result = run_cli(*args, env={"NUMBA_ENABLE_CUDASIM": "0"})  # the real driver, not the kernels' simulator
        assert result.returncode == 2, (name, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: --device cuda: no CUDA GPU is available ("), (name, lines)
    assert list(tmp_path.iterdir()) == []
