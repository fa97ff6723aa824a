"""Student training on tiny caches: every method, resume, the CLI with evaluation, and the same
run under torchrun with two gloo processes."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import zarr
from cli import run_cli
from conftest import STUDENT_H, STUDENT_W, TINY

from evtools.cache import Cache, CacheError
from evtools.convert import ConvertSpec, convert
from evtools.errors import EvtoolsError, InputError
from evtools.evaluate import evaluate_checkpoint
from evtools.models.checkpoint import load_checkpoint, save_checkpoint
from evtools.models.deeplab import DeepLabConfig, DeepLabV3Plus
from evtools.train.config import load_config
from evtools.devices import DeviceError
from evtools.train.student import StudentInputs, process_device, split_validation, train_student

@pytest.mark.parametrize("method, extra", [("supervised", []), ("kd-aps", []), ("evdistill", []),
                                           ("evdistill", ["parts.bmr=false"]), ("evdistill", ["weights.adversarial=0.1"])])
def test_every_method_trains_and_writes_its_run(student_data, tmp_path, method, extra):
    config = load_config(None, TINY + [f'method="{method}"'] + extra)
    inputs = StudentInputs(events=student_data["caches"], images=student_data["images"], teacher=student_data["teacher"])
    metrics = train_student(config, inputs, tmp_path / "run")
    assert metrics["epoch"] == 1 and "val_miou" in metrics
    losses = {k for k in metrics if k.startswith("loss_")}
    expected = {"supervised": {"loss_task"}, "kd-aps": {"loss_distribution"}}.get(method)
    if expected:
        assert losses == expected
    elif "parts.bmr=false" in extra:
        assert losses == {"loss_distribution_real", "loss_affinity_real"}
    else:
        assert {"loss_distribution_real", "loss_affinity_real", "loss_reconstruction", "loss_i2e"} <= losses
        assert ("loss_adversarial" in losses) == ("weights.adversarial=0.1" in extra)
        assert all(np.isfinite(metrics[k]) for k in ("diag_e2i_l1", "diag_e2i_ssim", "diag_i2e_l1", "diag_zero_l1",
                                                     "diag_i2e_gate", "diag_e2i_gate", "diag_trusted_frames"))
    for name in ("config.toml", "meta.json", "metrics.jsonl", "last.pt", "best.pt", "state.pt"):
        assert (tmp_path / "run" / name).exists(), name
    model, meta = load_checkpoint(tmp_path / "run" / "best.pt")
    assert meta["repr"] == "evimage" and model.config.in_channels == 2
    assert json.loads((tmp_path / "run" / "meta.json").read_text())["validation"][0].endswith("c.zarr[None:None]")


@pytest.mark.parametrize("overrides, method, problem", [
    (["model.in_channels=5"], "supervised", "{cache}: its 'evimage' windows have 2 channels, the student (model.in_channels) takes 5"),
    (["model.num_classes=2"], "supervised", "{cache}: its pseudo-labels have 3 classes, the student 2 (model.num_classes)"),
    (["model.num_classes=4"], "kd-aps", "{teacher}: the teacher has 3 classes, the student 4 (model.num_classes)"),
])
def test_a_student_that_does_not_fit_its_data_or_teacher_is_refused(student_data, tmp_path, overrides, method, problem):
    # before, a RuntimeError (channels) or an IndexError (classes) in the first training step
    config = load_config(None, TINY + [f'method="{method}"'] + overrides)
    inputs = StudentInputs(events=student_data["caches"], teacher=student_data["teacher"])
    with pytest.raises(EvtoolsError) as refused:
        train_student(config, inputs, tmp_path / "run")
    assert str(refused.value) == problem.format(cache=student_data["caches"][0], teacher=student_data["teacher"])
    checkpoint = save_checkpoint(tmp_path / "s.pt", DeepLabV3Plus(DeepLabConfig(depth=18, width=0.25, in_channels=5,
                                                                                  num_classes=3, aspp_channels=8,
                                                                                  decoder_channels=8)).eval(), {"repr": "evimage"})
    with pytest.raises(EvtoolsError, match=rf"^{student_data['caches'][0]}: its 'evimage' windows have 2 channels, the "
                                           rf"network of {checkpoint} takes 5$"):
        evaluate_checkpoint(checkpoint, student_data["caches"][:1], truth="labels")


def test_pseudo_labels_beyond_the_students_classes_are_one_line(student_data, tmp_path):
    # a damaged labels chunk that still decodes: cross-entropy would raise deep inside torch
    caches = [Path(shutil.copytree(c, tmp_path / c.name)) for c in student_data["caches"]]
    zarr.open_array(caches[0] / "labels", mode="r+")[:] = 17
    config = load_config(None, TINY + ['method="supervised"', "training.validation_fraction=0"])
    with pytest.raises(CacheError, match=rf"^{caches[0]}: window \d+ of 'labels' holds class 17, and the network has 3 "
                                         r"classes \(255: ignored\)$"):
        train_student(config, StudentInputs(events=caches), tmp_path / "run")


def test_too_few_windows_or_images_for_a_batch_are_one_line(student_data, tmp_path):
    # before, EvDistill with fewer labelled images than a batch repeated their empty pass forever
    inputs = StudentInputs(events=student_data["caches"], images=student_data["images"], teacher=student_data["teacher"])
    for overrides, problem in (
            (["training.batch_size=8"], "6 labelled images (--images) make no batch of 8"),
            (["training.batch_size=20"], "16 training windows make no batch of 20")):
        config = load_config(None, TINY + ['method="evdistill"'] + overrides)
        with pytest.raises(EvtoolsError) as refused:
            train_student(config, inputs, tmp_path / "run")
        assert str(refused.value) == f"{problem}: give more, or a smaller batch size"
        assert not (tmp_path / "run").exists()


def test_a_student_given_as_the_teacher_is_refused(student_data, tmp_path):
    # before, a RuntimeError in the first step: the student's first convolution took 2 channels, the APS frames have 1
    config = load_config(None, TINY + ['method="supervised"'])
    train_student(config, StudentInputs(events=student_data["caches"]), tmp_path / "run")
    student = tmp_path / "run" / "last.pt"
    for method in ("kd-aps", "evdistill"):
        config = load_config(None, TINY + [f'method="{method}"'])
        inputs = StudentInputs(events=student_data["caches"], images=student_data["images"], teacher=student)
        with pytest.raises(EvtoolsError) as refused:
            train_student(config, inputs, tmp_path / method)
        assert str(refused.value) == (f"{student}: the teacher takes 2 input channels, the APS frames it is given 1 (a "
                                      "student of events: give a teacher that evtools train teacher wrote)")
        assert not (tmp_path / method).exists()


def test_resume_continues_the_run(student_data, tmp_path):
    config = load_config(None, TINY + ['method="supervised"'])
    train_student(config, StudentInputs(events=student_data["caches"]), tmp_path / "run")
    longer = load_config(tmp_path / "run" / "config.toml", ["training.epochs=2"])
    train_student(longer, StudentInputs(events=student_data["caches"]), tmp_path / "run", resume=True)
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
    # a damaged state.pt: one line naming it, the run left as it was
    state = tmp_path / "run" / "state.pt"
    content = torch.load(state, weights_only=True)
    del content["step"]
    torch.save(content, state)
    with pytest.raises(InputError, match=rf"^{state}: cannot resume from it \(KeyError: 'step'\)$"):
        train_student(longer, StudentInputs(events=student_data["caches"]), tmp_path / "run", resume=True)
    state.write_bytes(b"garbage")
    with pytest.raises(InputError, match=rf"^{state}: cannot resume from it \(UnpicklingError: "):
        train_student(longer, StudentInputs(events=student_data["caches"]), tmp_path / "run", resume=True)
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 2


def test_split_validation():
    assert split_validation(["b", "a", "c", "d"], 0.25) == ([("a", slice(None)), ("b", slice(None)), ("c", slice(None))],
                                                            [("d", slice(None))])


def test_cli_evdistill_then_eval(student_data, tmp_path):
    args = ["train", "student", "--method", "evdistill", "-o", tmp_path / "run", "--images", student_data["images"],
            "--teacher", student_data["teacher"]]
    for cache in student_data["caches"]:
        args += ["--events", cache]
    for item in TINY:
        args += ["--set", item]
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    result = run_cli("eval", tmp_path / "run" / "best.pt", "--events", student_data["caches"][2], "--truth", "labels",
                     "-o", tmp_path / "eval", "--render", "2")
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["windows"] == 8 and set(metrics["miou"]) == {"nanmean", "zero", "clamped"}
    assert (tmp_path / "eval" / "window_001.png").exists() and "| pixel accuracy |" in (tmp_path / "eval" / "metrics.md").read_text()
    resumed = run_cli("train", "student", "--resume", "-o", tmp_path / "run", "--images", student_data["images"],
                      "--teacher", student_data["teacher"], *(f"--events={cache}" for cache in student_data["caches"]))
    assert resumed.returncode == 0, resumed.stderr  # before, "evdistill: ; run in ..."
    assert (f"evdistill: the run in {tmp_path / 'run'} has trained its 1 epochs already; --epochs N continues it to N"
            == " ".join(resumed.stdout.split()))
    result = run_cli("train", "student", "--method", "kd-aps", "--events", student_data["caches"][0], "-o", tmp_path / "r2")
    assert (result.returncode, result.stderr) == (2, "error: --method kd-aps needs --teacher\n")
    for options, problem in ((["--render", "-1"], "render must be 0 or more pictures, got -1"),
                             # before, four lines of HDF5's internals
                             (["--truth", tmp_path / "missing.h5"], f"{tmp_path / 'missing.h5'}: no such file or directory")):
        result = run_cli("eval", tmp_path / "run" / "best.pt", "--events", student_data["caches"][2], *options)
        assert (result.returncode, result.stderr) == (2, f"error: {problem}\n")


def test_evaluation_counts_against_labels(student_data, tmp_path):
    config = load_config(None, TINY + ['method="supervised"'])
    train_student(config, StudentInputs(events=student_data["caches"]), tmp_path / "run")
    # the run is not lost to the same command typed again: refused unless resumed or overwritten
    before = (tmp_path / "run" / "best.pt").read_bytes()
    with pytest.raises(EvtoolsError) as refused:
        train_student(config, StudentInputs(events=student_data["caches"]), tmp_path / "run")
    assert str(refused.value) == f"{tmp_path / 'run'}: holds a run already: --resume continues it, --overwrite starts it again"
    assert (tmp_path / "run" / "best.pt").read_bytes() == before
    broken = load_config(None, TINY + ['method="supervised"', "model.num_classes=2"])  # refused before its first epoch
    with pytest.raises(EvtoolsError, match="pseudo-labels have 3 classes"):
        train_student(broken, StudentInputs(events=student_data["caches"]), tmp_path / "run", overwrite=True)
    assert (tmp_path / "run" / "best.pt").read_bytes() == before  # refused before anything was removed
    train_student(load_config(None, TINY + ['method="supervised"', "training.seed=1"]),
                  StudentInputs(events=student_data["caches"]), tmp_path / "run", overwrite=True)
    assert (tmp_path / "run" / "best.pt").read_bytes() != before and (tmp_path / "run" / "last.pt").exists()
    assert json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])["epoch"] == 1
    result = evaluate_checkpoint(tmp_path / "run" / "last.pt", [student_data["caches"][0]], truth="labels")
    assert sum(map(sum, result.confusion)) == 8 * STUDENT_W * STUDENT_H


def test_torchrun_two_gloo_processes(student_data, tmp_path):
    args = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
            "-m", "evtools", "train", "student", "--method", "supervised", "-o", str(tmp_path / "ddp")]
    for cache in student_data["caches"]:
        args += ["--events", str(cache)]
    for item in TINY:
        args += ["--set", item]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 1  # rank 0 alone writes
    assert json.loads((tmp_path / "ddp" / "meta.json").read_text())["world_size"] == 2


def test_each_torchrun_process_takes_the_gpu_of_its_local_rank(monkeypatch):
    assert process_device("cpu", 4, 3) == "cpu"
    assert process_device("cuda:1", 1, 0) == "cuda:1"  # one process: the device given
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert [process_device("cuda", 2, rank) for rank in (0, 1)] == ["cuda:0", "cuda:1"]
    with pytest.raises(DeviceError) as err:
        process_device("cuda", 3, 2)
    assert str(err.value) == ("--device cuda under torchrun: the process of local rank 2 needs GPU 2, torch sees 2 "
                              "(start at most that many processes a node)")
    with pytest.raises(DeviceError) as err:
        process_device("cuda:1", 2, 0)
    assert str(err.value) == ("--device cuda:1 under torchrun: each process takes the GPU of its local rank; "
                              "give --device cuda")


def test_eval_against_a_ground_truth_folder_equals_gt_labels(tmp_path):
    from evtools.simulate import SimulationSpec, simulate_recordings

    paths = simulate_recordings(tmp_path / "sim", SimulationSpec(sequences=1, seconds=0.2, format="mvsec", seed=4))
    plain = convert(paths[0], tmp_path / "plain", ConvertSpec(crop_rows=(0, 200))).output
    labelled = convert(paths[0], tmp_path / "labelled",
                       ConvertSpec(crop_rows=(0, 200), ground_truth=tmp_path / "sim" / "ground_truth")).output
    student = DeepLabV3Plus(DeepLabConfig(depth=18, width=0.25, in_channels=5, num_classes=6, aspp_channels=8,
                                          decoder_channels=8)).eval()
    checkpoint = save_checkpoint(tmp_path / "s.pt", student, {"repr": "voxel"})
    from_folder = evaluate_checkpoint(checkpoint, [plain], truth=str(tmp_path / "sim" / "ground_truth"))
    from_cache = evaluate_checkpoint(checkpoint, [labelled], truth="gt_labels")
    assert from_folder.confusion == from_cache.confusion
    assert sum(map(sum, from_cache.confusion)) == 5 * 200 * 346  # 5 frames, every pixel labelled
    bad = tmp_path / "narrow.hdf5"  # masks narrower than the sensor: refused, one line naming the file
    with h5py.File(tmp_path / "sim" / "ground_truth" / f"{paths[0].stem}.hdf5") as source, h5py.File(bad, "w") as h5:
        h5["masks"], h5["frame_t_us"] = source["masks"][:, :, :300], source["frame_t_us"][:]
    with pytest.raises(InputError, match=rf"^{bad}: masks of 300x260 do not fit the recording's sensor of 346 columns$"):
        evaluate_checkpoint(checkpoint, [plain], truth=str(bad))


def test_eval_reports_each_frame_condition(tmp_path):
    from evtools.simulate import SimulationSpec, simulate_recordings

    spec = SimulationSpec(sequences=1, seconds=0.2, format="mvsec", seed=4, aps_schedule=("night", "normal"),
                          aps_segment_s=0.08)
    paths = simulate_recordings(tmp_path / "sim", spec)
    cache = convert(paths[0], tmp_path / "c", ConvertSpec(ground_truth=tmp_path / "sim" / "ground_truth")).output
    condition = Cache(cache).array("gt_condition")
    assert condition.attrs["names"] == ["normal", "night", "overexposed", "blur"]
    np.testing.assert_array_equal(condition[:], [1, 1, 0, 0, 1])  # frames at 40..200 ms, 80 ms segments
    student = DeepLabV3Plus(DeepLabConfig(depth=18, width=0.25, in_channels=5, num_classes=6, aspp_channels=8,
                                          decoder_channels=8)).eval()
    checkpoint = save_checkpoint(tmp_path / "s.pt", student, {"repr": "voxel"})
    result = evaluate_checkpoint(checkpoint, [cache], truth="gt_labels")
    assert {n: s["windows"] for n, s in result.by_condition.items()} == {"night": 3, "normal": 2}
    # the conditions split the windows (every pixel labelled, so each window weighs the same)
    by = result.by_condition
    assert result.pixel_accuracy == pytest.approx((3 * by["night"]["pixel_accuracy"] + 2 * by["normal"]["pixel_accuracy"]) / 5)
    # label arrays scored per condition too: the ground truth against itself, window by window
    import zarr

    from evtools.evaluate import score

    group = zarr.open_group(cache, mode="r+")
    group.create_array("labels", data=group["gt_labels"][:], chunks=(1, *group["gt_labels"].shape[1:]))
    per_condition = {}
    total, _ = score([cache], by_condition=per_condition)
    assert sorted(per_condition) == ["night", "normal"]
    assert per_condition["night"].sum() == 3 * 260 * 346 and per_condition["normal"].sum() == 2 * 260 * 346
    np.testing.assert_array_equal(per_condition["night"] + per_condition["normal"], total)
    assert np.count_nonzero(total - np.diag(np.diag(total))) == 0


def test_losses_fall_and_checkpoints_reload_to_the_same_network(student_data, tmp_path):
    import torch

    config = load_config(None, TINY + ['method="supervised"', "training.epochs=4", "training.lr=0.01"])
    train_student(config, StudentInputs(events=student_data["caches"]), tmp_path / "run")
    log = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [entry["loss_task"] for entry in log]
    assert len(losses) == 4 and all(np.isfinite(losses)) and losses[-1] < losses[0]
    model, meta = load_checkpoint(tmp_path / "run" / "last.pt")
    assert meta["epoch"] == 4 and meta["metrics"] == log[-1]
    saved = DeepLabV3Plus(config.model)
    saved.load_state_dict(torch.load(tmp_path / "run" / "state.pt", weights_only=True)["student"])
    x = torch.randn(2, 2, 24, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x)["logits"], saved.eval()(x)["logits"], rtol=0, atol=0)
