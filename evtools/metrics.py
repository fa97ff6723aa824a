"""Segmentation metrics over pixels whose label is not 255 (ignore).

The literature computes mIoU three ways, which differ when a class is absent from an image or a
split; ``miou`` takes the convention by name:
- ``"nanmean"`` (EvDistill): a class absent from both prediction and truth has no IoU and is
  skipped in the mean;
- ``"zero"`` (Ev-SegNet): such a class counts as IoU 0;
- ``"clamped"`` (ESS): IoU = intersection / max(union, 1), so such a class counts as 0 too,
  but never through a division by zero; a class present only in the prediction counts 0 in all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evtools.labels import CLASS_NAMES, IGNORE

CONVENTIONS = ("nanmean", "zero", "clamped")


def confusion_matrix(prediction: np.ndarray, truth: np.ndarray, num_classes: int) -> np.ndarray:
    """(K, K) int64 counts, rows = truth, columns = prediction, over pixels whose truth is not 255
    (predictions outside 0..K-1 are an error)."""
    prediction, truth = np.asarray(prediction).ravel(), np.asarray(truth).ravel()
    if prediction.shape != truth.shape:
        raise ValueError(f"prediction and truth differ in size: {prediction.size} and {truth.size}")
    keep = truth != IGNORE
    prediction, truth = prediction[keep].astype(np.int64), truth[keep].astype(np.int64)
    if len(truth) and (truth.max() >= num_classes or prediction.min() < 0 or prediction.max() >= num_classes):
        raise ValueError(f"labels outside 0..{num_classes - 1} (other than {IGNORE} in the truth)")
    return np.bincount(truth * num_classes + prediction, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def pixel_accuracy(confusion: np.ndarray) -> float:
    total = confusion.sum()
    return float(np.trace(confusion) / total) if total else float("nan")


def iou_per_class(confusion: np.ndarray, convention: str = "nanmean") -> np.ndarray:
    """Per-class IoU under a convention (see the module docstring)."""
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    intersection = np.diag(confusion).astype(np.float64)
    union = confusion.sum(0) + confusion.sum(1) - np.diag(confusion)
    if convention == "clamped":
        return intersection / np.maximum(union, 1)
    empty = union == 0
    iou = np.divide(intersection, union, out=np.zeros_like(intersection), where=~empty)
    if convention == "nanmean":
        iou[empty] = np.nan
    return iou


def miou(confusion: np.ndarray, convention: str = "nanmean") -> float:
    iou = iou_per_class(confusion, convention)
    return float(np.nanmean(iou)) if not np.isnan(iou).all() else float("nan")


@dataclass(frozen=True)
class Scores:
    """What one confusion matrix says: pixel accuracy, mIoU in each convention, IoU per class
    (nanmean convention, None for a class absent from both), and the matrix itself."""

    pixel_accuracy: float
    miou: dict[str, float]
    iou: list[float | None]
    confusion: list[list[int]]

    @classmethod
    def of(cls, confusion: np.ndarray) -> Scores:
        return cls(pixel_accuracy(confusion), {c: miou(confusion, c) for c in CONVENTIONS},
                   [None if np.isnan(v) else float(v) for v in iou_per_class(confusion, "nanmean")], confusion.tolist())

    def rows(self) -> list[tuple[str, str]]:
        """(metric, value) lines for tables: the classes named as in evtools.labels when there are
        as many, else numbered."""
        names = CLASS_NAMES if len(self.iou) == len(CLASS_NAMES) else [str(k) for k in range(len(self.iou))]
        return ([("pixel accuracy", f"{self.pixel_accuracy:.4f}")]
                + [(f"mIoU ({c})", f"{v:.4f}") for c, v in self.miou.items()]
                + [(f"IoU {name}", "absent" if v is None else f"{v:.4f}") for name, v in zip(names, self.iou)])
