import re

import cv2
import numpy as np
import pytest
import torch
import zarr
from cli import run_cli

from evtools.convert import ConvertSpec, convert
from evtools.data import ImageMaskFolder
from evtools.errors import InputError
from evtools.events import Events
from evtools.io.writers.evh5 import write_evh5
from evtools.models.checkpoint import load_checkpoint
from evtools.models.deeplab import DeepLabConfig
from evtools.metrics import miou, pixel_accuracy
from evtools.train.common import evaluate
from evtools.train.teacher import TeacherTraining, train_teacher

TINY = DeepLabConfig(depth=18, width=0.25, in_channels=1, num_classes=2, aspp_channels=16, decoder_channels=16)


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "frames").mkdir()
    (tmp_path / "masks").mkdir()
    for k in range(8):
        image = np.zeros((32, 48), np.uint8)
        image[:, rng.integers(8, 40):] = 220  # a bright right part: class 1
        mask = (image > 100).astype(np.uint8)
        mask[:2] = 255
        cv2.imwrite(str(tmp_path / "frames" / f"f{k}.png"), image)
        cv2.imwrite(str(tmp_path / "masks" / f"f{k}.png"), mask)
    return tmp_path


def test_image_folder_items(folder):
    dataset = ImageMaskFolder(folder)
    item = dataset[0]
    assert item["aps"].shape == (1, 32, 48) and item["aps"].max() <= 1.0
    assert item["labels"].dtype == torch.int64 and int(item["labels"][0, 0]) == 255
    with pytest.raises(InputError, match="not a labelled image folder"):
        ImageMaskFolder(folder / "frames")


def test_a_broken_pair_is_one_line_naming_its_file(folder, tmp_path):
    cv2.imwrite(str(folder / "masks" / "f1.png"), np.zeros((30, 48), np.uint8))  # two rows short
    (folder / "frames" / "f2.png").write_bytes(b"not a png")
    cv2.imwrite(str(folder / "frames" / "s_0001.png"), np.zeros((32, 48), np.uint8))
    cv2.imwrite(str(folder / "masks" / "s_0001.png"), np.zeros((32, 48), np.uint8))
    cv2.imwrite(str(folder / "frames" / "s_0000.png"), np.zeros((16, 48), np.uint8))  # the frame before: smaller
    cv2.imwrite(str(folder / "masks" / "f3.png"), np.full((32, 48), 257, np.uint16))  # had been read as grey: 1
    dataset = ImageMaskFolder(folder, with_previous=True)
    names = [image.name for image, _ in dataset.pairs]
    with pytest.raises(InputError, match=rf"^{folder}/masks/f1.png: a 48x30 mask for a 48x32 image$"):
        dataset[names.index("f1.png")]
    with pytest.raises(InputError, match=rf"^{folder}/frames/f2.png: not an image OpenCV can read$"):
        dataset[names.index("f2.png")]
    with pytest.raises(InputError, match=rf"^{folder}/frames/s_0000.png: a 48x16 image before a 48x32 one of its sequence$"):
        dataset[names.index("s_0001.png")]
    with pytest.raises(InputError, match=rf"^{folder}/masks/f3.png: holds the value 257: a class index is a whole "
                                         r"number from 0 to 254 \(255: ignored\)$"):
        dataset[names.index("f3.png")]
    result = run_cli("train", "teacher", folder, "-o", tmp_path / "t.pt", "--epochs", "1", "--batch-size", "1",
                     "--crop", "none", "--workers", "1")  # found in a loader worker: the same one line
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and result.stderr.startswith(f"error: {folder}/")


def test_teacher_learns_and_its_checkpoint_loads(folder, tmp_path):
    config = TeacherTraining(model=TINY, epochs=6, batch_size=4, lr=0.05, crop=(24, 32))
    result = train_teacher(folder, tmp_path / "t.pt", config, val_source=folder)
    assert [entry["epoch"] for entry in result.validation] == [1, 2, 3, 4, 5, 6]
    assert result.validation[-1]["pixel_accuracy"] > 0.8
    model, meta = load_checkpoint(result.checkpoint)
    assert model.config == TINY and meta["training"]["epochs"] == 6 and meta["validation"] == result.validation
    # the checkpoint is the network that was validated last: the same scores again
    loader = torch.utils.data.DataLoader(ImageMaskFolder(folder), batch_size=4)
    confusion = evaluate(model, loader, "aps", TINY.num_classes, "cpu")
    assert pixel_accuracy(confusion) == result.validation[-1]["pixel_accuracy"]
    assert miou(confusion) == result.validation[-1]["miou"]


def test_a_mask_beyond_the_classes_and_a_crop_beyond_the_images_are_one_line(folder, tmp_path):
    mask = np.ones((32, 48), np.uint8)
    mask[5, 7] = 9
    cv2.imwrite(str(folder / "masks" / "f3.png"), mask)
    problem = f"{folder}/masks/f3.png: holds class 9, and the network has 2 classes (255: ignored)"
    with pytest.raises(InputError, match=f"^{re.escape(problem)}$"):
        ImageMaskFolder(folder, label_classes=2)[3]
    assert int(ImageMaskFolder(folder, label_classes=10)[3]["labels"].max()) == 9
    tiny = ["--width", "0.25", "--head-channels", "16", "--classes", "2", "--epochs", "1", "--batch-size", "4"]
    result = run_cli("train", "teacher", folder, "-o", tmp_path / "t.pt", *tiny, "--crop", "none")
    assert (result.returncode, result.stderr) == (2, f"error: {problem}\n")
    cv2.imwrite(str(folder / "masks" / "f3.png"), np.ones((32, 48), np.uint8))
    result = run_cli("train", "teacher", folder, "-o", tmp_path / "t.pt", *tiny)  # the default crop, 192x256
    assert (result.returncode, result.stderr) == (
        2, "error: crop: a 192x256 crop does not fit a 32x48 sample (give a smaller crop, or none)\n")
    assert not (tmp_path / "t.pt").exists()
    # before, no step was taken and an untrained checkpoint was written ("last loss nan")
    result = run_cli("train", "teacher", folder, "-o", tmp_path / "t.pt", *tiny, "--crop", "none", "--batch-size", "64")
    assert (result.returncode, result.stderr) == (
        2, f"error: {len(ImageMaskFolder(folder))} labelled training images make no batch of 64: give more, or a smaller "
           "batch size\n")
    assert not (tmp_path / "t.pt").exists()


def test_cli_train_teacher(folder, tmp_path):
    result = run_cli("train", "teacher", folder, "-o", tmp_path / "t.pt", "--epochs", "1", "--batch-size", "4",
                     "--width", "0.25", "--head-channels", "16", "--classes", "2", "--crop", "none")
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout and (tmp_path / "t.pt").exists()
    before = (tmp_path / "t.pt").read_bytes()
    again = ["train", "teacher", folder, "-o", tmp_path / "t.pt", "--epochs", "1", "--batch-size", "4", "--width", "0.25",
             "--head-channels", "16", "--classes", "2", "--crop", "none", "--seed", "1"]
    result = run_cli(*again)  # before, the checkpoint was replaced without a word
    assert (result.returncode, result.stderr) == (2, f"error: {tmp_path / 't.pt'}: exists already: --overwrite replaces it\n")
    assert (tmp_path / "t.pt").read_bytes() == before
    result = run_cli(*again, "--overwrite")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "t.pt").read_bytes() != before
    result = run_cli("train", "teacher", folder, "-o", tmp_path / "t.pt", "--crop", "24by32")
    assert (result.returncode, result.stderr) == (2, "error: --crop: '24by32' is not HEIGHTxWIDTH, such as 192x256\n")


def labelled_cache(tmp_path, height, width):
    """A cache of 8 APS frames, dark left and bright right, with labels saying which."""
    frames = np.zeros((8, height, width), np.uint8)
    frames[:, :, width // 2 :] = 220
    events = Events(np.arange(10, dtype=np.int64) * 1000, np.zeros(10, np.uint16), np.zeros(10, np.uint16),
                    np.ones(10, np.int8))
    path = write_evh5(tmp_path / "r.h5", [events], width=width, height=height, frames=frames,
                      frames_t_us=np.arange(1, 9) * 1000)
    cache = convert(path, tmp_path / "c", ConvertSpec()).output
    zarr.open_group(cache, mode="r+").create_array("labels", data=(frames > 100).astype(np.uint8),
                                                   chunks=(1, height, width))
    return cache


def test_teacher_from_caches_with_aps_and_labels(tmp_path):
    cache = labelled_cache(tmp_path, 32, 48)
    result = train_teacher([str(cache)], tmp_path / "t.pt", TeacherTraining(model=TINY, epochs=1, batch_size=4, crop=None))
    assert load_checkpoint(result.checkpoint)[1]["trained_on"] == [str(cache)]


def test_training_with_loader_workers_finishes_every_epoch(tmp_path):
    # the second epoch's workers hung: starting Numba's threads in a worker set OpenMP's count back
    # to all cores, and torch's first operation on a frame (over its 32,768-value grain, so run in
    # parallel) waited for a libgomp team that the fork had left without threads
    result = run_cli("train", "teacher", labelled_cache(tmp_path, 192, 256), "-o", tmp_path / "t.pt", "--epochs", "3",
                     "--workers", "2", "--batch-size", "4", "--crop", "none", "--classes", "2", "--width", "0.25",
                     "--head-channels", "8")
    assert result.returncode == 0, result.stderr
    assert "after 3 epochs" in " ".join(result.stdout.split())  # rich wraps the line
