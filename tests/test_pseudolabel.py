import json

import numpy as np
import pytest
import torch
import zarr
from cli import run_cli

from evtools.cache import Cache, CacheError
from evtools.convert import ConvertSpec, convert
from evtools.errors import EvtoolsError
from evtools.events import Events
from evtools.io.writers.evh5 import write_evh5
from evtools.evaluate import score
from evtools.models.teacher import CITYSCAPES19, CITYSCAPES19_TO_DDD17, Teacher
from evtools.pseudolabel import PseudolabelSpec, label_frames, pseudolabel
from evtools.windows import Every

W, H = 16, 8


class Brightness(torch.nn.Module):
    """A teacher whose logits say class 1 where the pixel is bright and class 0 where dark; a third
    class never wins."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bright = x[:, :1] * 20 - 10
        return torch.cat([-bright, bright, torch.full_like(bright, -50)], dim=1)


@pytest.fixture
def scripted(tmp_path):
    path = tmp_path / "teacher.ts"
    torch.jit.script(Brightness()).save(str(path))
    return path


def make_cache(tmp_path, name="c", n_frames=10):
    frames = np.zeros((n_frames, H, W), np.uint8)
    frames[:, :, : W // 2] = 230  # left half bright
    frames[:, 0, 0] = 128  # an uncertain pixel
    events = Events(np.arange(40, dtype=np.int64) * 1000, np.zeros(40, np.uint16), np.zeros(40, np.uint16), np.ones(40, np.int8))
    path = write_evh5(tmp_path / f"{name}.h5", [events], width=W, height=H, frames=frames,
                      frames_t_us=np.arange(1, n_frames + 1) * 3000)
    return convert(path, tmp_path / name, ConvertSpec()).output


def test_torchscript_teacher_labels_a_cache(tmp_path, scripted):
    cache_path = make_cache(tmp_path)
    spec = PseudolabelSpec(teacher=scripted, in_channels=1, num_classes=3, scales=(1.0,), flip=False)
    result = pseudolabel(cache_path, spec)
    labels = Cache(cache_path).array("labels")[:]
    expected = np.zeros((H, W), np.uint8)
    expected[:, : W // 2] = 1
    expected[0, 0] = 1  # 128/255 * 20 - 10 > 0
    np.testing.assert_array_equal(labels, np.broadcast_to(expected, labels.shape))
    confidence = Cache(cache_path).array("labels_confidence")[:]
    assert confidence.dtype == np.float16 and confidence[0, 0, 0] < confidence[0, 0, 1]
    attrs = dict(zarr.open_group(cache_path)["labels"].attrs)
    assert attrs["complete"] and attrs["options"]["teacher_fingerprint"] == Teacher(spec).fingerprint
    assert result.class_counts == [10 * H * W // 2, 10 * H * W // 2, 0, 0]  # per class, then ignored


def test_min_confidence_tta_and_class_map(tmp_path, scripted):
    cache_path = make_cache(tmp_path)
    # the uncertain pixel (0.5 intensity) falls below 0.9 and becomes 255
    pseudolabel(cache_path, PseudolabelSpec(teacher=scripted, in_channels=1, num_classes=3, min_confidence=0.9))
    labels = Cache(cache_path).array("labels")[0]
    assert labels[0, 0] == 255 and labels[1, 0] == 1 and labels[1, -1] == 0
    # a class map folding classes 0 and 1 onto 2 makes everything class 2 with certainty
    (tmp_path / "map.json").write_text(json.dumps([2, 2, 0]))
    pseudolabel(cache_path, PseudolabelSpec(teacher=scripted, in_channels=1, num_classes=3, class_map=str(tmp_path / "map.json"),
                                            overwrite=True))
    assert (Cache(cache_path).array("labels")[:] == 2).all()


def test_the_labels_classes_are_the_teachers_unless_asked(tmp_path, scripted):
    # recorded 6 whatever the teacher before, so that a student of a 3-class teacher's classes was
    # refused ("its pseudo-labels have 6 classes, the student 3")
    from evtools.models.checkpoint import save_checkpoint
    from evtools.models.deeplab import DeepLabConfig, DeepLabV3Plus

    def recorded(cache_path):
        return dict(zarr.open_group(cache_path)["labels"].attrs)["options"]["num_classes"]

    checkpoint = save_checkpoint(tmp_path / "t.pt", DeepLabV3Plus(DeepLabConfig(
        depth=18, width=0.25, in_channels=1, num_classes=4, aspp_channels=8, decoder_channels=8)).eval())
    result = run_cli("pseudolabel", make_cache(tmp_path, "a", n_frames=2), "--teacher", checkpoint, "--scales", "1")
    assert result.returncode == 0, result.stderr
    assert recorded(tmp_path / "a.zarr") == 4
    spec = dict(teacher=scripted, in_channels=1, scales=(1.0,), flip=False)
    assert pseudolabel(make_cache(tmp_path, "b", n_frames=2), PseudolabelSpec(**spec)).class_counts[-1] == 0
    assert recorded(tmp_path / "b.zarr") == 3  # a TorchScript teacher's, from its first frame
    (tmp_path / "map.json").write_text(json.dumps([4, 255, 0]))
    pseudolabel(make_cache(tmp_path, "c", n_frames=2), PseudolabelSpec(**spec, class_map=str(tmp_path / "map.json")))
    assert recorded(tmp_path / "c.zarr") == 5  # one more than the map's largest target
    with pytest.raises(EvtoolsError, match=f"^{scripted}: the teacher has 3 classes, more than the 2 asked for: "
                                           "give a class map$"):
        pseudolabel(make_cache(tmp_path, "d", n_frames=2), PseudolabelSpec(**spec, num_classes=2))
    with pytest.raises(EvtoolsError, match=rf"^{tmp_path}/map.json: the class map sends a class to 4, not one of the 3 "
                                           r"classes \(0 to 2\) or 255$"):
        Teacher(PseudolabelSpec(**spec, num_classes=3, class_map=str(tmp_path / "map.json")))
    # the map given as it is, on the command line
    result = run_cli("pseudolabel", make_cache(tmp_path, "e", n_frames=2), "--teacher", scripted, "--in-channels", "1",
                     "--scales", "1", "--class-map", "[1, 0, 255]")
    assert result.returncode == 0, result.stderr
    assert recorded(tmp_path / "e.zarr") == 2
    bright_is_0 = np.ones((H, W), np.uint8)
    bright_is_0[:, : W // 2] = 0
    np.testing.assert_array_equal(Cache(tmp_path / "e.zarr").array("labels")[0], bright_is_0)


@pytest.mark.parametrize("class_map, problem", [
    ("[0, 1, 300]", "--class-map: a class map is a JSON list of integers, teacher class -> output class (0 to 254) or 255"),
    ("[0, -1, 2]", "--class-map: a class map is a JSON list of integers, teacher class -> output class (0 to 254) or 255"),
    ("[0, true, 2]", "--class-map: a class map is a JSON list of integers, teacher class -> output class (0 to 254) or 255"),
    ("[]", "--class-map: a class map is a JSON list of integers, teacher class -> output class (0 to 254) or 255"),
    ("[0, 1", "--class-map: not a JSON class map (Expecting ',' delimiter: line 1 column 6 (char 5))"),
    ("file:bad.json", "bad.json: a class map is a JSON list of integers, teacher class -> output class (0 to 254) or 255"),
    ("file:nothing.json", "nothing.json: no such class map (built in: cityscapes19-to-ddd17; or a JSON list)"),
])
def test_bad_class_maps_are_one_line(tmp_path, scripted, class_map, problem):
    (tmp_path / "bad.json").write_text('{"0": 1}')
    if class_map.startswith("file:"):
        class_map = str(tmp_path / class_map[5:])
        problem = f"{tmp_path}/{problem}"
    with pytest.raises(EvtoolsError) as refused:
        Teacher(PseudolabelSpec(teacher=scripted, in_channels=1, class_map=class_map))
    assert str(refused.value) == problem


def test_cityscapes_map_is_ev_segnets():
    names = dict(zip(CITYSCAPES19, CITYSCAPES19_TO_DDD17))
    assert [k for k, v in names.items() if v == 0] == ["road", "sidewalk"]
    assert [k for k, v in names.items() if v == 1] == ["building", "wall", "fence", "sky"]
    assert [k for k, v in names.items() if v == 2] == ["pole", "traffic light", "traffic sign"]
    assert [k for k, v in names.items() if v == 3] == ["vegetation", "terrain"]
    assert [k for k, v in names.items() if v == 4] == ["person", "rider"]
    assert [k for k, v in names.items() if v == 5] == ["car", "truck", "bus", "train", "motorcycle", "bicycle"]


def test_resume_and_refusals(tmp_path, scripted):
    cache_path = make_cache(tmp_path, n_frames=20)
    spec = PseudolabelSpec(teacher=scripted, in_channels=1, num_classes=3, batch_size=4)

    class Stop(Exception):
        pass

    def stop_at_8(update):
        assert update.total == 20
        if update.done >= 8:
            raise Stop

    with pytest.raises(Stop):
        pseudolabel(cache_path, spec, stop_at_8)
    # the progress on disk (the consolidated metadata is rewritten when the labels are finished)
    assert zarr.open_group(cache_path, use_consolidated=False)["labels"].attrs["windows_done"] == 8
    resumed = pseudolabel(cache_path, spec)
    assert resumed.resumed_from == 8 and not resumed.up_to_date
    assert pseudolabel(cache_path, spec).up_to_date
    with pytest.raises(CacheError, match="already holds labels from another teacher or options"):
        pseudolabel(cache_path, PseudolabelSpec(teacher=scripted, in_channels=1, num_classes=3, min_confidence=0.5))
    # a cache without frames
    events = Events(np.arange(10, dtype=np.int64), np.zeros(10, np.uint16), np.zeros(10, np.uint16), np.ones(10, np.int8))
    plain = convert(write_evh5(tmp_path / "nf.h5", [events], width=W, height=H), tmp_path / "nf",
                    ConvertSpec(window=Every(5))).output
    with pytest.raises(CacheError) as err:
        pseudolabel(plain, spec)
    assert str(err.value) == f"{plain}: has no APS frames ('aps'): convert with a frame-aligned window mode"


def test_score_against_truth(tmp_path, scripted):
    cache_path = make_cache(tmp_path)
    pseudolabel(cache_path, PseudolabelSpec(teacher=scripted, in_channels=1, num_classes=3))
    group = zarr.open_group(cache_path, mode="r+")
    truth = np.array(group["labels"][:])
    truth[:, :, 0] = 0  # the truth disagrees on the first column
    gt_labels = group.create_array("gt_labels", data=truth, chunks=(1, H, W))
    confusion, abstained = score([cache_path], num_classes=3)
    assert confusion.sum() == 10 * H * W and abstained == 0
    assert confusion[0, 1] == 10 * H  # the bright first column: truth 0, label 1
    # classes that uint8 labels cannot hold, and labels beyond the classes given: one line each
    for classes in (1, 256):
        with pytest.raises(EvtoolsError, match=rf"^classes must be from 2 to 255 \(labels are uint8, 255 meaning no label\), "
                                               rf"got {classes}$"):
            score([cache_path], num_classes=classes)
    assert score([cache_path], num_classes=255)[0].shape == (255, 255)
    # arrays that are not labels: before, numpy's broadcasting error for the voxel grids
    for name, array in (("repr/voxel", "float32 (10, 5, 8, 16)"), ("labels_confidence", "float16 (10, 8, 16)")):
        with pytest.raises(CacheError) as refused:
            score([cache_path], prediction=name, num_classes=3)
        assert str(refused.value) == (f"{cache_path}: '{name}' is not a label array ({array}; labels are integers, a "
                                      "16x8 image a window)")
    gt_labels[0, 0, 0] = 2
    with pytest.raises(CacheError, match=rf"^{cache_path}: 'labels' against 'gt_labels': labels outside 0..1 "
                                         r"\(other than 255 in the truth\)$"):
        score([cache_path], num_classes=2)


def test_cli_pseudolabel_then_info_and_render(tmp_path, scripted):
    cache_path = make_cache(tmp_path)
    result = run_cli("pseudolabel", cache_path, "--teacher", scripted, "--in-channels", "1", "--scales", "1.0", "--no-flip")
    assert result.returncode == 0, result.stderr
    info = json.loads(run_cli("info", "--json", cache_path).stdout)
    assert info["label_counts"] == {"0": 10 * H * W // 2, "1": 10 * H * W // 2}
    assert run_cli("render", cache_path, "-o", tmp_path / "w.png").returncode == 0
    result = run_cli("pseudolabel", cache_path, "--teacher", scripted)
    assert result.returncode == 2 and result.stderr == f"error: {scripted}: a TorchScript teacher needs --in-channels\n"


def test_label_frames_directly(scripted):
    teacher = Teacher(PseudolabelSpec(teacher=scripted, in_channels=1, num_classes=3, scales=(0.5, 1.0), flip=True))
    labels, confidence = label_frames(teacher, np.full((2, 8, 8), 255, np.uint8))
    assert (labels == 1).all() and confidence.dtype == np.float16


@pytest.mark.parametrize("options, message", [
    (dict(scales=(0.0, -1.0)), "scales must be from 0.1 to 4.0, got (0.0, -1.0)"),
    (dict(scales=(1e9,)), "scales must be from 0.1 to 4.0, got (1000000000.0,)"),
    (dict(scales=()), "scales must be from 0.1 to 4.0, got ()"),
    (dict(mean=(0.5,)), "mean and std must be given together, got ((0.5,), None)"),
    (dict(mean=(0.5,), std=(0.0,)), "std must be finite numbers above 0, got (0.0,)"),
    (dict(mean=(float("nan"),), std=(1.0,)), "mean must be finite numbers, as many as std has, got (nan,)"),
    (dict(mean=(0.5,), std=(1.0, 1.0)), "mean must be finite numbers, as many as std has, got (0.5,)"),
    (dict(in_channels=0), "in_channels must be at least 1, got 0"),
    (dict(num_classes=1), "num_classes must be from 2 to 255 (labels are uint8, 255 meaning no label), got 1"),
    (dict(num_classes=256), "num_classes must be from 2 to 255 (labels are uint8, 255 meaning no label), got 256"),
    (dict(min_confidence=2.0), "min_confidence must be from 0 to 1, got 2.0"),
    (dict(min_confidence=float("nan")), "min_confidence must be from 0 to 1, got nan"),
    (dict(batch_size=0), "batch_size must be at least 1, got 0"),
])
def test_options_out_of_range_are_refused_naming_them(scripted, options, message):
    # before, zero or huge scales and a zero batch were tracebacks, a zero std labelled from NaNs
    with pytest.raises(EvtoolsError) as refused:
        PseudolabelSpec(teacher=scripted, **options)
    assert str(refused.value) == message


def test_normalisation_of_another_channel_count_than_the_teachers_is_refused(tmp_path, scripted):
    result = run_cli("pseudolabel", make_cache(tmp_path), "--teacher", scripted, "--in-channels", "3",
                     "--mean", "0.5,0.5", "--std", "1,1")
    assert result.returncode == 2 and result.stderr == (
        f"error: {scripted}: --mean and --std give 2 values a channel, the teacher takes 3 channel(s): give 1 or 3 values\n")


class Pooled(torch.nn.Module):
    """A network that gives one score per image, not logits per pixel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3))


class Failing(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(-1, 3, 5)  # no (B, 1, 8, 16) batch has a multiple of 15 values


class NotANumber(torch.nn.Module):
    """Logits that are NaN where the frame is bright: labels from them would be noise."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, torch.where(x > 0.5, torch.full_like(x, float("nan")), x)], dim=1)


class Infinite(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, torch.full_like(x, float("inf"))], dim=1)


class ThreeHundredClasses(torch.nn.Module):
    """More classes than uint8 labels hold: class 299 would have been stored as 43."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.zeros_like(x).repeat(1, 299, 1, 1), x + 1], dim=1)


# found on the one frame that a TorchScript teacher without a class map is first run on, to learn its classes
@pytest.mark.parametrize("network, problem", [
    (Pooled(), "the teacher gave (1, 1) for a (1, 1, 8, 16) batch, not (B, K, H, W) logits"),
    (Failing(), "the teacher failed on a (1, 1, 8, 16) batch (RuntimeError: shape '[-1, 3, 5]' is invalid for input of size 128)"),
    (NotANumber(), "the teacher gave NaN or infinite logits for a (1, 1, 8, 16) batch"),
    (Infinite(), "the teacher gave NaN or infinite logits for a (1, 1, 8, 16) batch"),
    (ThreeHundredClasses(), "the teacher has 300 classes, more than the 255 that uint8 labels hold (255 meaning no label): give a class map"),
])
def test_a_teacher_that_fails_or_gives_no_logits_is_one_line(tmp_path, network, problem):
    path = tmp_path / "teacher.ts"
    torch.jit.script(network).save(str(path))
    result = run_cli("pseudolabel", make_cache(tmp_path, n_frames=3), "--teacher", path, "--in-channels", "1",
                     "--scales", "1", "--no-flip")
    assert (result.returncode, result.stderr) == (2, f"error: {path}: {problem}\n")


def test_a_teacher_that_cannot_label_the_cache_leaves_its_labels_as_they_were(tmp_path, scripted):
    # --overwrite with a class map of 2 entries for a 3-class teacher used to reset the labels, then
    # fail at the first batch: the labels of the run before were lost
    from evtools.models.checkpoint import save_checkpoint
    from evtools.models.deeplab import DeepLabConfig, DeepLabV3Plus

    cache_path = make_cache(tmp_path, n_frames=3)
    pseudolabel(cache_path, PseudolabelSpec(teacher=scripted, in_channels=1, scales=(1.0,), flip=False))
    before = {name: (Cache(cache_path).array(name)[:], dict(zarr.open_group(cache_path)[name].attrs))
              for name in ("labels", "labels_confidence")}
    failing = tmp_path / "failing.ts"
    torch.jit.script(Failing()).save(str(failing))
    checkpoint = save_checkpoint(tmp_path / "t.pt", DeepLabV3Plus(DeepLabConfig(
        depth=18, width=0.25, in_channels=1, num_classes=4, aspp_channels=8, decoder_channels=8)).eval())
    for teacher, options, problem in [
        (scripted, ["--in-channels", "1", "--class-map", "[0, 1]"], "the class map has 2 entries, the teacher 3 classes"),
        (checkpoint, ["--class-map", "[0, 1]"], "the class map has 2 entries, the teacher 4 classes"),
        (failing, ["--in-channels", "1"], "the teacher failed on a (1, 1, 8, 16) batch (RuntimeError: shape '[-1, 3, 5]' "
                                          "is invalid for input of size 128)"),
    ]:
        result = run_cli("pseudolabel", cache_path, "--teacher", teacher, *options, "--scales", "1", "--no-flip",
                         "--overwrite")
        assert (result.returncode, result.stderr) == (2, f"error: {teacher}: {problem}\n")
        for name, (values, attrs) in before.items():
            np.testing.assert_array_equal(Cache(cache_path).array(name)[:], values)
            assert dict(zarr.open_group(cache_path)[name].attrs) == attrs


def test_pseudolabelling_a_cache_that_another_command_writes_is_refused(tmp_path, scripted):
    # a conversion --overwrite of the cache, or a second pseudolabel with another teacher, would
    # otherwise leave labels of two runs, or of a cache that is gone
    from evtools.cache import cache_lock

    cache_path = make_cache(tmp_path, n_frames=3)
    with cache_lock(cache_path):
        result = run_cli("pseudolabel", cache_path, "--teacher", scripted, "--in-channels", "1", "--scales", "1", "--no-flip")
        assert (result.returncode, result.stderr) == (
            2, f"error: {cache_path}: another evtools command is writing this cache now (convert or pseudolabel); "
               "wait for it to finish\n")
        assert "labels" not in zarr.open_group(cache_path)
    assert run_cli("pseudolabel", cache_path, "--teacher", scripted, "--in-channels", "1", "--scales", "1",
                   "--no-flip").returncode == 0
    assert Cache(cache_path).has("labels") and not cache_path.with_name(cache_path.name + ".lock").exists()


def test_pseudolabelling_many_caches_shows_one_bar_counting_them(tmp_path, scripted, monkeypatch):
    # a bar each used to stay for every cache: hundreds of them filled the terminal
    import io

    from rich.console import Console

    from evtools.cli import console
    from evtools.cli.console import MAX_BARS
    from evtools.cli.pseudolabel import pseudolabel as command

    shown = io.StringIO()
    monkeypatch.setattr(console, "stderr", Console(file=shown, force_terminal=True, width=120, markup=False))
    caches = [str(make_cache(tmp_path, f"c{k}", n_frames=2)) for k in range(MAX_BARS + 1)]
    command(caches, teacher=scripted, in_channels=1, scales="1", flip=False)
    last = shown.getvalue().rsplit("\r", 1)[-1]  # the display's final state
    assert "caches" in last and f"{MAX_BARS + 1}/{MAX_BARS + 1}" in last and "c0.zarr" not in last
