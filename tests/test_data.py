import multiprocessing
import subprocess
import sys

import numpy as np
import pytest
import torch
import zarr
from conftest import write_recording

from evtools.cache import CacheError
from evtools.errors import ConfigError, EvtoolsError, InputError
from evtools.convert import ConvertSpec, convert
from evtools.data import CacheDataset, Crop, Loader, RandomCrop, RandomHorizontalFlip, Resize
from evtools.representations import Histogram, VoxelGrid


@pytest.fixture
def caches(tmp_path):
    paths = []
    for name, seed in (("a_data.hdf5", 1), ("b_data.hdf5", 2)):
        write_recording(tmp_path / name, n_events=5000, n_frames=6, seed=seed)
        result = convert(tmp_path / name, tmp_path / name.replace(".hdf5", ""),
                         ConvertSpec(representations=(VoxelGrid(), Histogram())))
        labels = np.tile((np.arange(64) % 7).astype(np.uint8), (6, 48, 1))
        labels[:, :, :3] = 255
        group = zarr.open_group(result.output, mode="r+")
        group.create_array("labels", shape=labels.shape, dtype=labels.dtype, chunks=(1, 48, 64))[:] = labels
        paths.append(result.output)
    return paths


def test_items_across_caches(caches):
    dataset = CacheDataset(caches, repr="histogram", with_aps=True, with_labels=True)
    assert len(dataset) == 12
    item = dataset[7]
    assert (int(item["cache"]), int(item["index"])) == (1, 1)
    group = zarr.open_group(caches[1], mode="r")
    np.testing.assert_array_equal(item["events"].numpy(), group["repr/histogram"][1].astype(np.float32))
    assert item["events"].dtype == torch.float32 and item["events"].shape == (10, 48, 64)
    np.testing.assert_allclose(item["aps"].numpy(), group["aps"][1][None] / 255.0, rtol=1e-6)
    assert item["labels"].dtype == torch.int64 and int(item["labels"][0, 0]) == 255
    with pytest.raises(IndexError):
        dataset[12]


def test_dataloader_with_two_workers(caches):
    dataset = CacheDataset(caches, with_aps=True)
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, num_workers=2)
    batches = list(loader)
    assert [b["events"].shape[0] for b in batches] == [4, 4, 4]
    events = torch.cat([b["events"] for b in batches])
    expected = torch.stack([dataset[i]["events"] for i in range(len(dataset))])
    torch.testing.assert_close(events, expected, rtol=0, atol=0)


class TorchThreads(torch.utils.data.Dataset):
    """torch's thread count in the process that reads each item of ``dataset``."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        self.dataset[index]
        return torch.get_num_threads()


def test_a_loader_worker_keeps_torch_on_one_thread(caches):
    # torch's worker loop sets 1; the dataset starting Numba's threads (its OpenMP layer sets
    # OpenMP's count to all cores) had undone it, and torch's next parallel operation hung
    counts = list(Loader(TorchThreads(CacheDataset(caches)), batch_size=4, num_workers=2))
    assert torch.cat(counts).tolist() == [1] * 12


def test_torch_threads_set_before_the_kernels_run_stay_set():
    # training.threads: Numba's OpenMP layer, starting at the first kernel, had set OpenMP's count
    # back to all cores where torch shares its libgomp (a fresh process: this one's Numba has started)
    script = """
import numpy as np, torch
from evtools.data import set_torch_threads
from evtools.representations import VoxelGrid
set_torch_threads(1)
torch.ones(100_000).div_(2)  # torch's threads start (over its grain: in parallel)
VoxelGrid()(np.arange(4, dtype=np.int64), np.zeros(4, np.uint16), np.zeros(4, np.uint16), np.ones(4, np.int8), 8, 8)
print(torch.get_num_threads())
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stdout) == (0, "1\n"), result.stderr


def test_an_error_in_a_loader_worker_comes_back_as_its_one_line(caches):
    (caches[1] / "repr" / "voxel" / "c.0.0.0.0").unlink()  # windows 0-5 of the second cache
    loader = Loader(CacheDataset(caches), batch_size=4, num_workers=1)
    with pytest.raises(EvtoolsError) as raised:
        list(loader)
    assert str(raised.value) == (f"{caches[1]}: window 0 of 'repr/voxel' is missing (the file that holds it was "
                                 "deleted); evtools info --verify lists every problem")
    # the workers are stopped at once, not when the error is collected (5 s a worker)
    assert not multiprocessing.active_children()
    # any other error of a worker is torch's, as it was
    with pytest.raises(ZeroDivisionError, match="Caught ZeroDivisionError in DataLoader worker process 0"):
        list(Loader(range(4), num_workers=1, collate_fn=lambda items: 1 / 0))
    assert not multiprocessing.active_children()
    # persistent workers are kept for the next epoch, after one left early too
    loader = Loader(range(8), batch_size=2, num_workers=1, persistent_workers=True)
    next(iter(loader))
    assert [batch.tolist() for batch in loader] == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert [batch.tolist() for batch in loader] == [[0, 1], [2, 3], [4, 5], [6, 7]]
    loader._iterator._shutdown_workers()  # at once, not when the test's frame is collected


def test_a_batch_of_windows_of_two_sizes_is_one_line(caches, tmp_path):
    write_recording(tmp_path / "small_data.hdf5", n_events=2000, n_frames=6, width=32, height=24)
    small = convert(tmp_path / "small_data.hdf5", tmp_path / "small", ConvertSpec(representations=(VoxelGrid(),))).output
    dataset = CacheDataset([caches[0], small], with_aps=True)  # 6 windows each: the second batch mixes them
    for workers in (0, 1):
        loader = Loader(dataset, batch_size=4, num_workers=workers)
        with pytest.raises(EvtoolsError) as raised:
            list(loader)
        assert str(raised.value) == ("a batch mixes samples of different sizes ('events' 5x24x32 and 5x48x64): crop the "
                                     "training samples to one size (training.crop, --crop), or use caches and images "
                                     "of one size")
    cropped = Loader(CacheDataset([caches[0], small], with_aps=True, transforms=[RandomCrop(16, 16)]), batch_size=4)
    assert [tuple(batch["aps"].shape) for batch in cropped] == [(4, 1, 16, 16)] * 3


def test_transforms_move_events_frames_and_labels_together(caches):
    plain = CacheDataset(caches[0], with_aps=True, with_labels=True)[2]
    flipped = CacheDataset(caches[0], with_aps=True, with_labels=True, transforms=[RandomHorizontalFlip(p=1.0)])[2]
    for key in ("events", "aps", "labels"):
        torch.testing.assert_close(flipped[key], plain[key].flip(-1))
    cropped = Crop(top=4, left=10, height=20, width=30)(plain)
    for key in ("events", "aps", "labels"):
        torch.testing.assert_close(cropped[key], plain[key][..., 4:24, 10:40])
    torch.manual_seed(0)
    random = RandomCrop(20, 30)(plain)
    assert random["events"].shape[-2:] == random["aps"].shape[-2:] == random["labels"].shape == (20, 30)
    resized = Resize(24, 32)(plain)
    assert resized["events"].shape == (5, 24, 32) and resized["aps"].shape == (1, 24, 32)
    assert resized["labels"].dtype == torch.int64
    assert set(resized["labels"].unique().tolist()) <= set(plain["labels"].unique().tolist())  # nearest keeps classes


def test_missing_arrays_are_named(caches, tmp_path):
    with pytest.raises(CacheError) as err:
        CacheDataset(caches[0], repr="evimage")
    assert str(err.value) == f"{caches[0]}: has no 'evimage' representation (it has histogram, voxel) and stores no events to compute it from (convert with --repr events)"
    write_recording(tmp_path / "c_data.hdf5", n_events=1000, n_frames=3)
    plain = convert(tmp_path / "c_data.hdf5", tmp_path / "c", ConvertSpec()).output
    with pytest.raises(CacheError) as err:
        CacheDataset(plain, with_labels=True)
    assert str(err.value) == f"{plain}: has no 'labels' array (run evtools pseudolabel)"


def test_previous_aps_is_the_frame_before_when_close_enough(tmp_path):
    # 12 frames about 52 ms apart: each window's previous frame is the one before
    _, frames_t, images = write_recording(tmp_path / "close_data.hdf5", n_events=5000, n_frames=12)
    close = convert(tmp_path / "close_data.hdf5", tmp_path / "close", ConvertSpec()).output
    dataset = CacheDataset(close, with_previous_aps=True)
    assert torch.equal(dataset[0]["aps_previous"], dataset[0]["aps"])  # the first frame has none before it
    for k in (1, 5, 11):
        assert torch.equal(dataset[k]["aps_previous"][0], torch.from_numpy(images[k - 1]).float() / 255)
        assert torch.equal(dataset[k]["aps"][0], torch.from_numpy(images[k]).float() / 255)
    # 6 frames about 114 ms apart: too far, a window's own frame stands in
    _, _, far_images = write_recording(tmp_path / "far_data.hdf5", n_events=5000, n_frames=6)
    far = CacheDataset(convert(tmp_path / "far_data.hdf5", tmp_path / "far", ConvertSpec()).output,
                       with_previous_aps=True)
    assert torch.equal(far[3]["aps_previous"], far[3]["aps"])
    # flips and crops move the previous frame with the others
    flipped = RandomHorizontalFlip(p=1.0)(dataset[4])
    assert torch.equal(flipped["aps_previous"], dataset[4]["aps_previous"].flip(-1))


def test_image_folder_previous_frame_by_sequence_number(tmp_path):
    import cv2

    from evtools.data import ImageMaskFolder

    for folder in ("frames", "masks"):
        (tmp_path / folder).mkdir()
    for name, value in (("a_0000", 10), ("a_0001", 20), ("b_0001", 30), ("still", 40)):
        cv2.imwrite(str(tmp_path / "frames" / f"{name}.png"), np.full((4, 6), value, np.uint8))
        cv2.imwrite(str(tmp_path / "masks" / f"{name}.png"), np.zeros((4, 6), np.uint8))
    folder = ImageMaskFolder(tmp_path, with_previous=True)
    previous = {p.stem: round(float(folder[k]["aps_previous"].mean()) * 255) for k, (p, _) in enumerate(folder.pairs)}
    # a_0001 follows a_0000; b_0000 does not exist and "still" has no number: the image itself
    assert previous == {"a_0000": 10, "a_0001": 10, "b_0001": 30, "still": 40}
    assert "aps_previous" not in ImageMaskFolder(tmp_path)[0]


def test_negative_indices_folders_of_caches_and_crops_that_do_not_fit(caches, tmp_path):
    dataset = CacheDataset(caches, repr="voxel")
    assert torch.equal(dataset[-1]["events"], dataset[len(dataset) - 1]["events"])
    with pytest.raises(IndexError, match="index -13 out of range for 12 windows"):
        dataset[-13]
    folder = CacheDataset(caches[0].parent, repr="voxel")  # the folder holding both caches
    assert folder.paths == sorted(caches) and len(folder) == 12
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="is neither a cache nor a folder of caches"):
        CacheDataset(tmp_path / "empty")
    with pytest.raises(ConfigError, match=r"^crop: a 100x10 crop does not fit a 48x64 sample \(give a smaller crop, or none\)$"):
        CacheDataset(caches, transforms=[RandomCrop(100, 10)])[0]


def test_labels_beyond_the_networks_classes_are_refused_when_read(caches):
    # classes 0-6 and 255 (ignored) in every window; cross-entropy would fail deep inside torch
    assert int(CacheDataset(caches, repr=None, with_labels=True, label_classes=7)[3]["labels"].max()) == 255
    with pytest.raises(CacheError, match=rf"^{caches[0]}: window 0 of 'labels' holds class 5, and the network has 5 "
                                         r"classes \(255: ignored\)$"):
        CacheDataset(caches, repr=None, with_labels=True, label_classes=5)[0]
    assert int(CacheDataset(caches, repr=None, with_labels=True)[0]["labels"].max()) == 255  # no classes: unchecked
