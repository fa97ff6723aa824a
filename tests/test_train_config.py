"""Training configurations: the shipped TOML files load and round-trip; every entry of the wrong
type or out of its range, in a file or a --set, is one line naming it, before any training."""

import os
from pathlib import Path

import pytest
from cli import run_cli

from evtools.errors import ConfigError, EvtoolsError, InputError
from evtools.train.config import StudentConfig, load_config, to_toml

CONFIGS = sorted((Path(__file__).parents[1] / "pipelines" / "configs").glob("*.toml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_the_shipped_configurations_load_and_round_trip(path, tmp_path):
    config = load_config(path)
    (tmp_path / "again.toml").write_text(to_toml(config.as_dict()))
    assert load_config(tmp_path / "again.toml") == config


@pytest.mark.parametrize("override, message", [
    ("training.epochs=abc", "training.epochs must be a whole number, got 'abc'"),
    ("training.epochs=2.5", "training.epochs must be a whole number, got 2.5"),
    ("training.epochs=0", "training.epochs must be at least 1, got 0"),
    ("training.batch_size=-4", "training.batch_size must be at least 1, got -4"),
    ("training.lr=0", "training.lr must be above 0, got 0"),
    ("training.lr=nan", "training.lr must be a finite number, got nan"),
    ("training.lr=true", "training.lr must be a finite number, got True"),
    ("training.crop=5", "training.crop must be a list of whole numbers, got 5"),
    ("training.crop=[0, 8]", "training.crop must be [] (no crop) or [height, width] of at least 1, got [0, 8]"),
    ("training.crop=[8, 8, 8]", "training.crop must be [] (no crop) or [height, width] of at least 1, got [8, 8, 8]"),
    ("training.flip=1", "training.flip must be true or false, got 1"),
    ("training.validation_fraction=1", "training.validation_fraction must be in [0, 1), got 1"),
    ("training.workers=-1", "training.workers must be at least 0, got -1"),
    ("training.precision=fp8", "--precision: 'fp8' is not one of fp32, bf16"),
    ("weights.affinity=-0.5", "weights.affinity must be at least 0, got -0.5"),
    ("parts.bmr=yes", "parts.bmr must be true or false, got 'yes'"),
    ("model.depth=7", "model.depth must be one of [18, 34, 50, 101] (the ResNet's), got 7"),
    ("model.output_stride=32", "model.output_stride must be 8 or 16, got 32"),
    ("training.seed=-1", "training.seed must be from 0 to 2147483647, got -1"),  # numpy's ValueError traceback
    ("model.num_classes=1", "model.num_classes must be from 2 to 255 (labels are uint8, 255 meaning no label), got 1"),
    ("model.width=0", "model.width must be above 0 and at most 4.0, got 0"),
    ("model.width=1e9", "model.width must be above 0 and at most 4.0, got 1000000000.0"),  # torch tried 63 TB
    ("model.aspp_channels=100000", "model.aspp_channels must be from 1 to 4096, got 100000"),
    ("training.threads=99999999999", "training.threads must be from 0 to 1024, got 99999999999"),  # an overflow
    ("training=3", "configuration entry 'training' must be a [training] table, got 3"),
    ("method=3", "method must be a string, got 3"),
    ("method=distill", "unknown method 'distill' (known: supervised, kd-aps, evdistill)"),
    ("training.epoch=3", "unknown entries in [training]: epoch"),
    ("nosuch.key=1", "unknown configuration entries: nosuch"),
    ("nokey", "--set 'nokey': write section.key=value"),
    ("method.x=1", "--set 'method.x=1': method is not a section"),
    (("training=abc", "training.crop=[8, 8]"), "--set 'training.crop=[8, 8]': training is not a section"),
])
def test_a_wrong_entry_is_refused_naming_it(override, message):
    with pytest.raises(EvtoolsError) as refused:
        load_config(None, [override] if isinstance(override, str) else list(override))
    assert str(refused.value) == message
    assert "\n" not in message


def test_whole_numbers_stand_for_floats_and_an_empty_crop_for_none():
    config = load_config(None, ["training.lr=1", "training.crop=[]", "weights.task=2"])
    assert (config.training.lr, config.training.crop, config.weights.task) == (1, [], 2)
    assert StudentConfig() == load_config(None)


def test_a_configuration_file_that_cannot_be_used_is_one_line(tmp_path):
    (tmp_path / "bad.toml").write_text("[training\nepochs = 2\n")
    with pytest.raises(InputError, match=r"bad.toml: not valid TOML \(Expected ']' at the end of a table declaration"):
        load_config(tmp_path / "bad.toml")
    with pytest.raises(InputError, match=r"none.toml: no such configuration file$"):
        load_config(tmp_path / "none.toml")
    (tmp_path / "binary.toml").write_bytes(b"\xff\xfe")  # was a UnicodeDecodeError traceback
    with pytest.raises(InputError, match=r"binary.toml: unreadable configuration file \('utf-8' codec can't decode byte "
                                         r"0xff in position 0: invalid start byte\)$"):
        load_config(tmp_path / "binary.toml")
    with pytest.raises(InputError, match=rf"^{tmp_path}: unreadable configuration file \(\[Errno 21\] Is a directory"):
        load_config(tmp_path)
    (tmp_path / "range.toml").write_text("[training]\nepochs = -3\n")
    with pytest.raises(ConfigError, match=r"^training.epochs must be at least 1, got -3$"):
        load_config(tmp_path / "range.toml")
    result = run_cli("train", "student", "--events", tmp_path / "none.zarr", "-o", tmp_path / "run", "--method",
                     "supervised", "--config", tmp_path / "range.toml")
    assert (result.returncode, result.stderr) == (2, "error: training.epochs must be at least 1, got -3\n")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("options, message", [
    (["--epochs", "0"], "epochs must be at least 1, got 0"),
    (["--lr", "-0.1"], "lr must be above 0, got -0.1"),
    (["--crop", "0x64"], "crop must be none or a height and width of at least 1, got (0, 64)"),
    (["--seed", "-5"], "seed must be from 0 to 2147483647, got -5"),
    (["--classes", "1"], "num_classes must be from 2 to 255 (labels are uint8, 255 meaning no label), got 1"),
    (["--depth", "20"], "depth must be one of [18, 34, 50, 101] (the ResNet's), got 20"),
    (["--width", "100"], "width must be above 0 and at most 4.0, got 100.0"),
    # 4 loader workers a core at most: 99999999999 had started process after process
    (["--workers", "99999999999"], f"--workers: give 0 to {4 * len(os.sched_getaffinity(0))} (4 worker processes a "
                                   "core this process may use), got 99999999999"),
])
def test_teacher_options_out_of_range_are_one_line(tmp_path, options, message):
    result = run_cli("train", "teacher", tmp_path, "-o", tmp_path / "teacher.pt", *options)
    assert (result.returncode, result.stdout, result.stderr) == (2, "", f"error: {message}\n")
