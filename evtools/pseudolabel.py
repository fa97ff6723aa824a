"""APS pseudo-labels: a teacher network run on each window's APS frame, written into the cache.

The teacher is an evtools checkpoint, or a TorchScript file mapping a (B, C, H, W) float image
batch to (B, K, H, W) logits (how a teacher trained elsewhere, on Cityscapes say, comes in). Its
K classes are mapped to the cache's classes by summing their softmax probabilities (a class
mapped to 255 only lowers the confidence). Test-time augmentation as Ev-SegNet: horizontal flip
and scales, softmax outputs averaged. Pixels whose mapped probability is below
``min_confidence`` become 255. Labels are written as ``labels`` (K, H, W) uint8 and
``labels_confidence`` (K, H, W) float16, resumably, with the teacher's fingerprint and the
options in the attributes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from evtools.cache import AddedArrays, ArraySpec, Cache, CacheArray, CacheError
from evtools.devices import check_device
from evtools.errors import EvtoolsError, InputError
from evtools.labels import IGNORE
from evtools.models.checkpoint import file_fingerprint, is_checkpoint, load_checkpoint

CITYSCAPES19 = ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
                "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle",
                "bicycle")
# Ev-SegNet's mapping of the 19 Cityscapes classes onto the 6 DDD17 classes
CITYSCAPES19_TO_DDD17 = (0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 1, 4, 4, 5, 5, 5, 5, 5, 5)
BUILTIN_CLASS_MAPS = {"cityscapes19-to-ddd17": CITYSCAPES19_TO_DDD17}
LABELS, CONFIDENCE = CacheArray.LABELS, CacheArray.LABELS_CONFIDENCE


@dataclass(frozen=True)
class PseudolabelSpec:
    teacher: Path
    in_channels: int | None = None  # TorchScript teachers: channels they expect (the gray frame is repeated)
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    class_map: str | None = None  # a built-in name or a JSON file: a list, teacher class -> output class or 255
    num_classes: int = 6
    scales: tuple[float, ...] = (0.75, 1.0, 1.5)
    flip: bool = True
    min_confidence: float = 0.0
    batch_size: int = 8
    device: str = "cpu"
    overwrite: bool = False


def load_class_map(name: str | None) -> tuple[int, ...] | None:
    if name is None:
        return None
    if name in BUILTIN_CLASS_MAPS:
        return BUILTIN_CLASS_MAPS[name]
    path = Path(name)
    if not path.is_file():
        raise InputError(path, f"no such class map (built in: {', '.join(BUILTIN_CLASS_MAPS)})")
    try:
        mapping = json.loads(path.read_text())
    except ValueError as err:
        raise InputError(path, f"not a JSON class map ({err})") from None
    if not isinstance(mapping, list) or not all(isinstance(v, int) for v in mapping):
        raise InputError(path, "a class map is a JSON list of integers: teacher class -> output class or 255")
    return tuple(mapping)


class Teacher:
    """A loaded teacher: ``probabilities(images)`` gives (B, K_out, H, W) averaged over the TTA."""

    def __init__(self, spec: PseudolabelSpec):
        check_device(spec.device)
        path = Path(spec.teacher)
        if not path.is_file():
            raise InputError(path, "no such teacher file")
        self.fingerprint = file_fingerprint(path)
        if is_checkpoint(path):
            model, meta = load_checkpoint(path, spec.device)
            self.in_channels = model.config.in_channels
            self._forward: Callable[[torch.Tensor], torch.Tensor] = lambda x: model(x)["logits"]
        else:
            try:
                scripted = torch.jit.load(str(path), map_location="cpu").to(spec.device).eval()
            except Exception as err:  # noqa: BLE001 - torch raises many kinds for a file that is neither
                raise InputError(path, "neither an evtools checkpoint nor a TorchScript file") from err
            if spec.in_channels is None:
                raise EvtoolsError(f"{path}: a TorchScript teacher needs --in-channels")
            self.in_channels = spec.in_channels
            self._forward = scripted
        self.spec = spec
        self.class_map = load_class_map(spec.class_map)

    def _prepare(self, frames: torch.Tensor) -> torch.Tensor:
        x = frames.float().div(255.0).unsqueeze(1).repeat(1, self.in_channels, 1, 1)
        if self.spec.mean is not None:
            x = (x - torch.tensor(self.spec.mean).view(1, -1, 1, 1)) / torch.tensor(self.spec.std).view(1, -1, 1, 1)
        return x

    def _mapped(self, probabilities: torch.Tensor) -> torch.Tensor:
        if self.class_map is None:
            return probabilities
        if len(self.class_map) != probabilities.shape[1]:
            raise EvtoolsError(
                f"{self.spec.teacher}: the class map has {len(self.class_map)} entries, the teacher {probabilities.shape[1]} classes"
            )
        out = probabilities.new_zeros((probabilities.shape[0], self.spec.num_classes, *probabilities.shape[2:]))
        for source, target in enumerate(self.class_map):
            if target != IGNORE:
                out[:, target] += probabilities[:, source]
        return out

    @torch.no_grad()
    def probabilities(self, frames: np.ndarray) -> torch.Tensor:
        """(B, K, H, W) class probabilities of uint8 frames (B, H, W), averaged over the TTA."""
        x = self._prepare(torch.from_numpy(frames)).to(self.spec.device)
        size = x.shape[-2:]
        total, count = None, 0
        for scale in self.spec.scales:
            scaled = x if scale == 1.0 else F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
            for flipped in ((False, True) if self.spec.flip else (False,)):
                logits = self._forward(scaled.flip(-1) if flipped else scaled)
                probabilities = logits.float().softmax(1)
                if flipped:
                    probabilities = probabilities.flip(-1)
                if probabilities.shape[-2:] != size:
                    probabilities = F.interpolate(probabilities, size=size, mode="bilinear", align_corners=False)
                total = probabilities if total is None else total + probabilities
                count += 1
        return self._mapped(total / count).cpu()


def label_frames(teacher: Teacher, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels (uint8, 255 below the confidence floor) and confidences (float16) of frames."""
    confidence, labels = teacher.probabilities(frames).max(1)
    labels = labels.numpy().astype(np.uint8)
    labels[confidence.numpy() < teacher.spec.min_confidence] = IGNORE
    return labels, confidence.numpy().astype(np.float16)


@dataclass(frozen=True)
class PseudolabelResult:
    cache: Path
    windows: int
    resumed_from: int
    up_to_date: bool
    class_counts: list[int]  # pixels per output class, then ignored pixels


def _options(spec: PseudolabelSpec, teacher: Teacher) -> dict:
    options = {k: v for k, v in asdict(spec).items() if k not in ("teacher", "device", "batch_size", "overwrite")}
    return {"teacher": str(spec.teacher), "teacher_fingerprint": teacher.fingerprint,
            **json.loads(json.dumps(options))}


def pseudolabel(cache_path: str | Path, spec: PseudolabelSpec, progress: Callable[[int, int], None] | None = None,
                teacher: Teacher | None = None) -> PseudolabelResult:
    """Writes the teacher's labels into one cache, resuming an interrupted run of the same
    teacher and options; other labels are refused unless ``spec.overwrite``."""
    teacher = teacher or Teacher(spec)
    opened = Cache(cache_path)
    if not opened.has(CacheArray.APS):
        raise CacheError(opened.path, "has no APS frames ('aps'): convert with a frame-aligned window mode")
    n, (height, width) = len(opened), opened.array(CacheArray.APS).shape[1:]
    arrays = {LABELS: ArraySpec((n, height, width), np.dtype(np.uint8), {"ignore": IGNORE}),
              CONFIDENCE: ArraySpec((n, height, width), np.dtype(np.float16))}
    written = AddedArrays(opened, arrays, _options(spec, teacher), spec.overwrite, "labels from another teacher or")
    resumed_from = written.done
    aps = opened.array(CacheArray.APS)
    for start in range(written.done, n, spec.batch_size):
        stop = min(start + spec.batch_size, n)
        labels, confidence = label_frames(teacher, aps[start:stop])
        written.write(start, {LABELS: labels, CONFIDENCE: confidence})
        if progress:
            progress(stop, n)
    up_to_date = written.complete
    written.finish()
    return PseudolabelResult(opened.path, n, resumed_from, up_to_date, _class_counts(written.group[LABELS][:], spec.num_classes))


def _class_counts(labels: np.ndarray, num_classes: int) -> list[int]:
    counts = np.bincount(labels.ravel(), minlength=256)
    return [int(c) for c in counts[:num_classes]] + [int(counts[IGNORE])]


def score(
    cache_paths: list[str | Path], prediction: str = LABELS, truth: str = CacheArray.GT_LABELS, num_classes: int = 6,
    by_condition: dict[str, np.ndarray] | None = None,
) -> tuple[np.ndarray, float]:
    """The confusion matrix of one label array against another over caches (pseudo-labels
    against the simulator's ground truth, say), and the fraction of truth-labelled pixels left
    out because the prediction abstained (255, below its confidence floor). A ``by_condition``
    dict also receives a confusion matrix per frame condition of caches that have
    ``gt_condition``."""
    from evtools.metrics import confusion_matrix

    confusion = np.zeros((num_classes, num_classes), np.int64)
    labelled = abstained = 0
    for path in cache_paths:
        opened = Cache(path)
        for name in (prediction, truth):
            if not opened.has(name):
                raise CacheError(opened.path, f"has no '{name}' array")
        predicted, true = opened.array(prediction), opened.array(truth)
        conditions = opened.array(CacheArray.GT_CONDITION) if by_condition is not None and opened.has(CacheArray.GT_CONDITION) else None
        for start in range(0, len(opened), 64):
            predicted_block, true_block = predicted[start : start + 64], true[start : start + 64].copy()
            skipped = (predicted_block == IGNORE) & (true_block != IGNORE)
            labelled += int((true_block != IGNORE).sum())
            abstained += int(skipped.sum())
            true_block[skipped] = IGNORE
            predicted_block = np.where(predicted_block == IGNORE, 0, predicted_block)  # only where truth is now ignored
            confusion += confusion_matrix(predicted_block, true_block, num_classes)
            if conditions is not None:
                names = conditions.attrs["names"]
                for j, code in enumerate(conditions[start : start + 64]):
                    if code < len(names):
                        matrix = by_condition.setdefault(names[code], np.zeros_like(confusion))
                        matrix += confusion_matrix(predicted_block[j], true_block[j], num_classes)
    return confusion, abstained / labelled if labelled else 0.0
