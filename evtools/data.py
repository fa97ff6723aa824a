"""PyTorch access to caches: ``CacheDataset`` and the paired transforms.

Each item is a dict of tensors: ``events`` (C, H, W) float32 (the chosen representation),
optionally ``aps`` (1, H, W) float32 in [0, 1], ``aps_previous`` (the frame before, for
EvDistill's I2E) and ``labels`` (H, W) int64 with 255 = ignore, and ``cache`` / ``index``
locating the window. Transforms apply the same geometry to all of them.
Zarr stores are opened lazily in each process, so a DataLoader with workers opens its own.

The representation is read from the cache's dense array, or computed from the events the cache
stores (``--repr events``): per item on the CPU, or, with ``batch_device``, for a whole batch in
one kernel launch by ``dataset.collate`` (the DataLoader's ``collate_fn``) on the CPU or the GPU.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from evtools.cache import Cache, CacheArray, CacheError, location
from evtools.devices import check_device
from evtools.errors import ConfigError, EvtoolsError, InputError
from evtools.events import Events
from evtools.io.images import read_grey, read_mask
from evtools.labels import IGNORE
from evtools.representations import Representation
from evtools.tensors import WindowTensors, representation_batch, resolve_representation

Sample = dict[str, torch.Tensor]
Transform = Callable[[Sample], Sample]
SPATIAL_KEYS = ("events", "aps", "aps_previous", "labels")
# A frame further back than this is no previous frame (a gap in the recording's frames)
PREVIOUS_FRAME_MAX_US = 100_000
PENDING_KEY = "pending_events"  # an item's window events whose representation ``collate`` computes


@dataclass(frozen=True, eq=False)
class _Pending:
    representation: Representation
    events: Events
    end_us: int
    width: int
    height: int


class CacheDataset(torch.utils.data.Dataset):
    """The windows of one or several caches, in order."""

    def __init__(
        self,
        paths: str | Path | Sequence[str | Path],
        repr: str | Representation | None = "voxel",
        with_aps: bool = False,
        with_labels: bool = False,
        transforms: Sequence[Transform] = (),
        labels: str = CacheArray.LABELS,
        with_previous_aps: bool = False,
        batch_device: str | None = None,
        label_classes: int | None = None,
    ):
        """``repr`` None leaves the events out (APS-only items); a name reads the dense array of
        that name, or computes the representation's defaults from stored events; a
        Representation also fixes the parameters (see ``tensors.resolve_representation``).
        ``labels`` names the label array: "labels" (pseudo-labels) or "gt_labels" (ground
        truth). ``with_previous_aps`` adds the previous window's frame when it is at most 100 ms
        older, else the window's own frame. ``batch_device`` ("cpu", "cuda", "cuda:1", ...)
        defers representations computed from events to ``collate``, which leaves them there.
        ``label_classes``, the classes of the network the labels train or score: a window whose
        labels hold another class (a damaged chunk) is refused when read."""
        self.paths = [location(paths)] if isinstance(paths, (str, Path)) else [location(p) for p in paths]
        self.paths = [cache for path in self.paths for cache in _caches_in(path)]
        self.repr, self.with_aps, self.with_labels, self.labels = repr, with_aps or with_previous_aps, with_labels, labels
        self.with_previous_aps = with_previous_aps
        self.transforms = tuple(transforms)
        self.batch_device = batch_device
        self.label_classes = label_classes
        if batch_device is not None:  # torch and the Numba kernels must both reach it
            check_device(batch_device)
            check_device(batch_device, kernels=True)
        lengths = []
        for path in self.paths:
            cache = Cache(path)  # checks schema and completeness now, in the main process
            if repr is not None:
                resolve_representation(cache, repr)
            for wanted, name in ((with_aps, CacheArray.APS), (with_labels, labels)):
                if wanted and not cache.has(name):
                    raise CacheError(path, f"has no '{name}' array" + (" (run evtools pseudolabel)" if name == CacheArray.LABELS else ""))
            lengths.append(len(cache))
        self._offsets = np.concatenate([[0], np.cumsum(lengths)])
        self._caches: list[Cache] | None = None
        self._pid: int | None = None

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def _opened(self) -> list[Cache]:
        if self._caches is None or self._pid != os.getpid():
            if torch.utils.data.get_worker_info() is not None:
                import numba

                numba.set_num_threads(1)  # the loader's workers are the parallelism: no threads on threads
                # torch's worker loop set 1 too; undone by Numba's start, torch's next operation ran on
                # the libgomp team that the fork left without its threads, and hung (train teacher
                # --workers 2, second epoch)
                set_torch_threads(1)
            self._caches = [Cache(path) for path in self.paths]
            self._tensors = [WindowTensors(cache, self.repr) if self.repr is not None else None for cache in self._caches]
            self._pid = os.getpid()
        return self._caches

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_caches": None, "_tensors": None, "_pid": None}  # workers open their own stores

    def windows_of(self, position: int) -> range:
        """The dataset indices of the windows of the cache at ``position``."""
        return range(int(self._offsets[position]), int(self._offsets[position + 1]))

    def locate(self, index: int) -> tuple[int, int]:
        """(cache position, window index) of a dataset index (negative ones count from the end)."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} windows")
        index %= len(self)
        position = int(np.searchsorted(self._offsets, index, side="right")) - 1
        return position, index - int(self._offsets[position])

    def __getitem__(self, index: int) -> Sample:
        position, k = self.locate(index)
        cache = self._opened()[position]
        sample = {"cache": torch.tensor(position), "index": torch.tensor(k)}
        deferred = False
        if self.repr is not None:
            tensors = self._tensors[position]
            deferred = tensors.from_events and self.batch_device is not None
            if deferred:
                sample[PENDING_KEY] = _Pending(tensors.representation, cache.window_events(k), tensors.end_us(k),
                                               cache.width, cache.height)
            else:
                sample["events"] = torch.from_numpy(np.asarray(tensors[k], np.float32))
        if self.with_aps:
            sample["aps"] = _frame_tensor(cache.window(CacheArray.APS, k))
        if self.with_previous_aps:
            frame_t = cache.values(CacheArray.FRAME_T)
            close = k > 0 and 0 < int(frame_t[k]) - int(frame_t[k - 1]) <= PREVIOUS_FRAME_MAX_US
            sample["aps_previous"] = _frame_tensor(cache.window(CacheArray.APS, k - 1)) if close else sample["aps"].clone()
        if self.with_labels:
            labels = cache.window(self.labels, k)
            if problem := labels_problem(labels, self.label_classes):
                raise CacheError(cache.path, f"window {k} of '{self.labels}' {problem}")
            sample["labels"] = torch.from_numpy(labels.astype(np.int64))
        return sample if deferred else self._transformed(sample)

    def _transformed(self, sample: Sample) -> Sample:
        for transform in self.transforms:
            sample = transform(sample)
        return sample

    def collate(self, samples: list[Sample]) -> Sample:
        """The DataLoader's ``collate_fn`` with ``batch_device``: computes the representations
        left to it, windows of one sensor size in one kernel launch each, then the transforms."""
        pending = [s for s in samples if PENDING_KEY in s]
        groups: dict[tuple, list[Sample]] = {}
        for sample in pending:
            item = sample[PENDING_KEY]
            groups.setdefault((item.representation, item.width, item.height), []).append(sample)
        device = torch.device(self.batch_device or "cpu")
        for (representation, width, height), group in groups.items():
            items = [s.pop(PENDING_KEY) for s in group]
            arguments = ([i.events for i in items], np.array([i.end_us for i in items]), width, height)
            if device.type == "cuda":  # written straight into a torch tensor on the GPU: no copy
                from numba import cuda as numba_cuda

                shape = (len(items), *representation.shape(width, height))
                values = torch.empty(shape, dtype=torch.from_numpy(np.empty(0, representation.dtype)).dtype, device=device)
                with numba_cuda.gpus[device.index or 0]:
                    representation_batch(representation, *arguments, "cuda", values)
            else:
                values = torch.from_numpy(representation_batch(representation, *arguments))
            for sample, value in zip(group, values.float()):
                sample["events"] = value
        computed = {id(s) for s in pending}
        return collate([self._transformed(s) if id(s) in computed else s for s in samples])


def collate(samples: list[Sample]) -> Sample:
    """torch's ``default_collate``, but samples of different sizes (windows of caches of other
    sensors, images of other sizes, left uncropped) are a one-line error naming the sizes, where
    torch's stack fails with a traceback. Loader's default ``collate_fn``."""
    for key in SPATIAL_KEYS if samples and isinstance(samples[0], dict) else ():
        shapes = sorted({tuple(sample[key].shape) for sample in samples if key in sample})
        if len(shapes) > 1:
            sizes = " and ".join("x".join(map(str, shape)) for shape in shapes[:2])
            raise EvtoolsError(f"a batch mixes samples of different sizes ('{key}' {sizes}): crop the training "
                               "samples to one size (training.crop, --crop), or use caches and images of one size")
    return torch.utils.data.default_collate(samples)


class Loader(torch.utils.data.DataLoader):
    """torch's DataLoader, but an evtools error raised in one of its worker processes (a damaged
    cache, an unreadable image) comes back as the one-line error it was: torch re-raises it as a
    RuntimeError holding the worker's whole traceback. Its batches are ``collate``'s unless a
    ``collate_fn`` is given."""

    def __init__(self, *args, **kwargs):
        if kwargs.get("collate_fn") is None:
            kwargs["collate_fn"] = collate
        super().__init__(*args, **kwargs)

    def __iter__(self):
        batches = super().__iter__()
        try:
            while True:
                try:
                    batch = next(batches)
                except StopIteration:
                    return
                except (RuntimeError, EvtoolsError) as err:
                    raise _worker_error(err) from err
                yield batch
        finally:
            # torch stops its workers when the iterator is collected; after an error its traceback
            # holds the iterator in a reference cycle, and stopping them from the garbage collector
            # waited 5 s a worker (their queues closed first). Persistent ones serve the next epoch.
            if not self.persistent_workers:
                getattr(batches, "_shutdown_workers", lambda: None)()


def training_loader(dataset, batch_size: int, what: str, **options) -> Loader:
    """A Loader of whole batches (the last partial one dropped, as training does), refused when
    ``dataset`` (``what`` it holds) makes none: an empty pass would train nothing, or, repeated
    until another stream ends, never end."""
    loader = Loader(dataset, batch_size=batch_size, drop_last=True, **options)
    if len(loader) == 0:
        raise EvtoolsError(f"{len(dataset)} {what} make no batch of {batch_size}: give more, or a smaller batch size")
    return loader


def _worker_error(err: Exception) -> Exception:
    """The evtools error behind torch's report of a worker's error, or ``err`` itself."""
    lines = str(err).strip().splitlines()
    if not (lines and lines[0].startswith("Caught ") and "DataLoader worker" in lines[0]):
        return err
    kind, _, message = lines[-1].partition(": ")  # the traceback's last line: "module.Error: message"
    return EvtoolsError(message) if kind.startswith("evtools.") and message else err


def set_torch_threads(count: int) -> None:
    """torch's intra-op threads, set once Numba's threads have started: where torch and Numba share
    one libgomp, Numba's OpenMP layer sets OpenMP's thread count to all cores when it starts, which
    undid an earlier ``torch.set_num_threads``."""
    import numba

    numba.get_num_threads()  # starts Numba's threads
    torch.set_num_threads(count)


def _caches_in(path: Path) -> list[Path]:
    """A cache, or the caches (``*.zarr``, sorted) of a folder that is no cache itself."""
    if path.is_dir() and not (path / "zarr.json").exists():
        caches = sorted(p for p in path.glob("*.zarr") if p.is_dir())
        if not caches:
            raise InputError(path, "is neither a cache nor a folder of caches (*.zarr)")
        return caches
    return [path]


def _frame_tensor(frame: np.ndarray) -> torch.Tensor:
    """(1, H, W) float32 in [0, 1] from an 8-bit frame."""
    return torch.from_numpy(np.asarray(frame)).float().div_(255.0).unsqueeze(0)


def _map_spatial(sample: Sample, function: Callable[[torch.Tensor, str], torch.Tensor]) -> Sample:
    return {key: function(value, key) if key in SPATIAL_KEYS else value for key, value in sample.items()}


@dataclass(frozen=True)
class Resize:
    """Resizes to (height, width): bilinear for events and APS, nearest for labels."""

    height: int
    width: int

    def __call__(self, sample: Sample) -> Sample:
        def resize(value: torch.Tensor, key: str) -> torch.Tensor:
            if key == "labels":
                return F.interpolate(value[None, None].float(), (self.height, self.width), mode="nearest")[0, 0].long()
            return F.interpolate(value[None], (self.height, self.width), mode="bilinear", align_corners=False)[0]

        return _map_spatial(sample, resize)


@dataclass(frozen=True)
class Crop:
    """Crops a (height, width) box at (top, left)."""

    top: int
    left: int
    height: int
    width: int

    def __call__(self, sample: Sample) -> Sample:
        rows, cols = slice(self.top, self.top + self.height), slice(self.left, self.left + self.width)
        return _map_spatial(sample, lambda value, key: value[..., rows, cols])


@dataclass(frozen=True)
class RandomCrop:
    """Crops a (height, width) box at a random place, the same for every tensor of a sample."""

    height: int
    width: int

    def __call__(self, sample: Sample) -> Sample:
        full_h, full_w = next(sample[key] for key in SPATIAL_KEYS if key in sample).shape[-2:]
        if self.height > full_h or self.width > full_w:  # a training option: one line, not a traceback
            raise ConfigError(f"crop: a {self.height}x{self.width} crop does not fit a {full_h}x{full_w} sample "
                              "(give a smaller crop, or none)")
        top = int(torch.randint(0, full_h - self.height + 1, ()))
        left = int(torch.randint(0, full_w - self.width + 1, ()))
        return Crop(top, left, self.height, self.width)(sample)


@dataclass(frozen=True)
class RandomHorizontalFlip:
    """Mirrors every tensor of a sample left to right with probability ``p``."""

    p: float = 0.5

    def __call__(self, sample: Sample) -> Sample:
        if float(torch.rand(())) >= self.p:
            return sample
        return _map_spatial(sample, lambda value, key: value.flip(-1))


def labels_problem(labels: np.ndarray, classes: int | None) -> str | None:
    """Names the first class id in ``labels`` that is neither below ``classes`` nor IGNORE, if
    any (none is looked for without ``classes``): cross-entropy would fail on it deep inside
    torch, on a GPU with a device-side assert."""
    if classes is None:
        return None
    beyond = labels[(labels >= classes) & (labels != IGNORE)]
    if not beyond.size:
        return None
    return f"holds class {beyond.flat[0]}, and the network has {classes} classes ({IGNORE}: ignored)"


class ImageMaskFolder(torch.utils.data.Dataset):
    """Labelled images as PNG pairs: ``<root>/frames/NAME.png`` (or ``images/``) with
    ``<root>/masks/NAME.png`` (or ``labels/``), grayscale images and uint8 class ids (255 =
    ignore). Items are ``{"aps": (1, H, W) float32 in [0, 1], "labels": (H, W) int64}``, the
    keys of CacheDataset, so the same transforms and training code serve both.

    ``with_previous`` adds ``aps_previous``: for images named ``SEQUENCE_NUMBER.png`` (the
    simulator's, and most video datasets'), the image numbered one less in the same sequence
    when it exists, else the image itself (a still image: no motion)."""

    def __init__(self, root: str | Path, transforms: Sequence[Transform] = (), with_previous: bool = False,
                 label_classes: int | None = None):
        root = Path(root)
        images = next((root / d for d in ("frames", "images") if (root / d).is_dir()), None)
        masks = next((root / d for d in ("masks", "labels") if (root / d).is_dir()), None)
        if images is None or masks is None:
            raise InputError(root, "not a labelled image folder (it needs frames/ or images/, and masks/ or labels/)")
        self.pairs = [(path, masks / path.name) for path in sorted(images.glob("*.png")) if (masks / path.name).exists()]
        if not self.pairs:
            raise InputError(root, "holds no image with a mask of the same name")
        self.transforms = tuple(transforms)
        self.with_previous = with_previous
        self.label_classes = label_classes  # as CacheDataset's

    def __len__(self) -> int:
        return len(self.pairs)

    def previous_of(self, image_path: Path) -> Path:
        """The image before ``image_path`` in its sequence, or the image itself."""
        sequence, _, number = image_path.stem.rpartition("_")
        if not sequence or not number.isdigit() or int(number) == 0:
            return image_path
        previous = image_path.with_name(f"{sequence}_{int(number) - 1:0{len(number)}d}{image_path.suffix}")
        return previous if previous.exists() else image_path

    def __getitem__(self, index: int) -> Sample:
        image_path, mask_path = self.pairs[index]
        image, mask = read_grey(image_path), read_mask(mask_path)
        if mask.shape != image.shape:
            raise InputError(mask_path, f"a {mask.shape[1]}x{mask.shape[0]} mask for a {image.shape[1]}x{image.shape[0]} image")
        if problem := labels_problem(mask, self.label_classes):
            raise InputError(mask_path, problem)
        sample = {"aps": _frame_tensor(image), "labels": torch.from_numpy(mask.astype(np.int64))}
        if self.with_previous:
            previous_path = self.previous_of(image_path)
            previous = read_grey(previous_path)
            if previous.shape != image.shape:
                raise InputError(previous_path, f"a {previous.shape[1]}x{previous.shape[0]} image before a "
                                                f"{image.shape[1]}x{image.shape[0]} one of its sequence")
            sample["aps_previous"] = _frame_tensor(previous)
        for transform in self.transforms:
            sample = transform(sample)
        return sample

