"""APS pseudo-labels: a teacher (evtools.models.teacher) run on each window's APS frame, written
into the cache. Pixels whose mapped probability is below ``min_confidence`` become 255. Labels are written as ``labels`` (K, H, W) uint8 and
``labels_confidence`` (K, H, W) float16, resumably, with the teacher's fingerprint and the
options in the attributes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from evtools.cache import AddedArrays, ArraySpec, Cache, CacheArray, CacheError, cache_lock
from evtools.errors import require
from evtools.labels import IGNORE
from evtools.models.teacher import Teacher, TeacherSpec
from evtools.progress import Progress, report

LABELS, CONFIDENCE = CacheArray.LABELS, CacheArray.LABELS_CONFIDENCE

@dataclass(frozen=True)
class PseudolabelSpec(TeacherSpec):
    """The teacher and how to run it, then how labels are written."""

    min_confidence: float = 0.0
    batch_size: int = 8
    overwrite: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        require(0 <= self.min_confidence <= 1, "min_confidence", "from 0 to 1", self.min_confidence)
        require(self.batch_size >= 1, "batch_size", "at least 1", self.batch_size)


def label_frames(teacher: Teacher, frames: np.ndarray, min_confidence: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Labels (uint8, 255 below the confidence floor) and confidences (float16) of frames."""
    confidence, labels = teacher.probabilities(frames).max(1)
    labels = labels.numpy().astype(np.uint8)
    labels[confidence.numpy() < min_confidence] = IGNORE
    return labels, confidence.numpy().astype(np.float16)


@dataclass(frozen=True)
class PseudolabelResult:
    cache: Path
    windows: int
    resumed_from: int
    up_to_date: bool
    class_counts: list[int]  # pixels per output class, then ignored pixels


def _options(spec: PseudolabelSpec, teacher: Teacher) -> dict:
    """What keys the labels: the teacher, its fingerprint, the options and the labels' classes."""
    options = {k: v for k, v in asdict(spec).items() if k not in ("teacher", "device", "batch_size", "overwrite")}
    return {"teacher": str(spec.teacher), "teacher_fingerprint": teacher.fingerprint,
            **json.loads(json.dumps(options)), "num_classes": teacher.output_classes}


def pseudolabel(cache_path: str | Path, spec: PseudolabelSpec, progress: Progress | None = None,
                teacher: Teacher | None = None) -> PseudolabelResult:
    """Writes the teacher's labels into one cache, resuming an interrupted run of the same
    teacher and options; other labels are refused unless ``spec.overwrite``."""
    teacher = teacher or Teacher(spec)
    opened = Cache(cache_path)
    if not opened.has(CacheArray.APS):
        raise CacheError(opened.path, "has no APS frames ('aps'): convert with a frame-aligned window mode")
    with cache_lock(opened.path):  # no conversion or other pseudo-labelling writes it meanwhile
        n, (height, width) = len(opened), opened.array(CacheArray.APS).shape[1:]
        # one frame first: a teacher that fails on it, or that its class map does not fit, fails
        # before any labels are replaced; and a TorchScript teacher's classes are known after it
        if n:
            teacher.probabilities(opened.windows(CacheArray.APS, 0, 1))
        arrays = {LABELS: ArraySpec((n, height, width), np.dtype(np.uint8), {"ignore": IGNORE}),
                  CONFIDENCE: ArraySpec((n, height, width), np.dtype(np.float16))}
        written = AddedArrays(opened, arrays, _options(spec, teacher), spec.overwrite, "labels from another teacher or")
        resumed_from = written.done
        for start in range(written.done, n, spec.batch_size):
            stop = min(start + spec.batch_size, n)
            labels, confidence = label_frames(teacher, opened.windows(CacheArray.APS, start, stop), spec.min_confidence)
            written.write(start, {LABELS: labels, CONFIDENCE: confidence})
            report(progress, stop, n)
        up_to_date = written.complete
        written.finish()
        return PseudolabelResult(opened.path, n, resumed_from, up_to_date, _class_counts(written.group[LABELS][:],
                                                                                         teacher.output_classes or 0))


def _class_counts(labels: np.ndarray, num_classes: int) -> list[int]:
    counts = np.bincount(labels.ravel(), minlength=256)
    return [int(c) for c in counts[:num_classes]] + [int(counts[IGNORE])]
