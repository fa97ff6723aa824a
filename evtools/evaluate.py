"""Evaluating a student checkpoint on event caches against labels: the ground truth
(``gt_labels``), the pseudo-labels (``labels``), or a ground-truth file or folder."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from evtools.cache import Cache, CacheArray, CacheAttr, CacheError
from evtools.devices import check_device
from evtools.errors import require
from evtools.io.images import write_picture
from evtools.labels import CLASS_COUNTS, IGNORE, MAX_CLASSES
from evtools.metrics import CONVENTIONS, Scores, confusion_matrix, miou, pixel_accuracy
from evtools.models.checkpoint import load_checkpoint
from evtools.tensors import WindowTensors, require_channels, require_unstacked



@dataclass(frozen=True)
class Evaluation(Scores):
    """A checkpoint's Scores over caches (written as metrics.json)."""

    checkpoint: str = ""
    caches: list[str] = field(default_factory=list)
    truth: str = ""
    windows: int = 0
    # per frame condition, where the caches know it (gt_condition): windows, pixel accuracy, mIoU
    by_condition: dict = field(default_factory=dict)


def _truth_source(cache: Cache, truth: str):
    """A function window range -> truth masks, for an array name or a ground-truth path."""
    if truth in (CacheArray.GT_LABELS, CacheArray.LABELS):
        if not cache.has(truth):
            raise CacheError(cache.path, f"has no '{truth}' array to evaluate against")
        return lambda start, stop: cache.windows(truth, start, stop)
    from evtools.io.ground_truth import load_ground_truth

    ground_truth = load_ground_truth(truth, Path(cache.attrs[CacheAttr.SOURCE]["path"]))
    ground_truth.check_fits(cache.width, None)  # the cache keeps the sensor's height after the crop only
    frame_abs = cache.attrs[CacheAttr.T0] + cache.values(CacheArray.FRAME_T)
    ground_truth.require_a_frame(frame_abs, cache.path)
    crop = tuple(cache.attrs[CacheAttr.CROP]) if cache.attrs[CacheAttr.CROP] else None
    height = (crop[1] if crop else cache.height)
    return lambda start, stop: ground_truth.masks(frame_abs[start:stop], max(height, cache.height), cache.width, crop)


def evaluate_checkpoint(checkpoint: str | Path, caches: list[str | Path], truth: str = "auto", batch_size: int = 8,
                        device: str = "cpu", out_dir: str | Path | None = None, render: int = 0) -> Evaluation:
    require(render >= 0, "render", "0 or more pictures", render)
    model, meta = load_checkpoint(checkpoint, check_device(device))
    repr_name = meta.get("repr", "voxel")
    num_classes = model.config.num_classes
    opened = [Cache(p) for p in caches]
    if truth == "auto":
        truth = CacheArray.GT_LABELS if all(c.has(CacheArray.GT_LABELS) for c in opened) else CacheArray.LABELS
    confusion = np.zeros((num_classes, num_classes), np.int64)
    condition_names = _condition_names(opened)
    by_condition = {name: np.zeros_like(confusion) for name in condition_names or ()}
    windows_by_condition = dict.fromkeys(by_condition, 0)
    pictures: list[tuple] = []
    with torch.no_grad():
        for cache in opened:
            require_unstacked(cache, repr_name)
            events, truth_of = WindowTensors(cache, repr_name), _truth_source(cache, truth)
            require_channels(cache, repr_name, model.config.in_channels, f"the network of {checkpoint}")
            for start in range(0, len(cache), batch_size):
                stop = min(start + batch_size, len(cache))
                x = torch.from_numpy(np.asarray(events[start:stop], np.float32)).to(device)
                prediction = model(x)["logits"].argmax(1).cpu().numpy().astype(np.uint8)
                true = truth_of(start, stop)
                confusion += _confusion(cache, prediction, true, num_classes, f"'{truth}' against the student's classes")
                if condition_names:
                    add_by_condition(by_condition, condition_names, cache.windows(CacheArray.GT_CONDITION, start, stop),
                                     prediction, true, num_classes, windows_by_condition)
                for k in range(min(render - len(pictures), stop - start)):
                    pictures.append((cache, start + k, prediction[k], true[k]))
    result = Evaluation(
        **asdict(Scores.of(confusion)),
        checkpoint=str(checkpoint), caches=[str(c.path) for c in opened], truth=str(truth), windows=sum(len(c) for c in opened),
        by_condition={name: {"windows": windows_by_condition[name], "pixel_accuracy": pixel_accuracy(matrix),
                             "miou": {c: miou(matrix, c) for c in CONVENTIONS}}
                      for name, matrix in by_condition.items() if windows_by_condition[name]},
    )
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "metrics.json").write_text(json.dumps(asdict(result), indent=2) + "\n")
        (out_dir / "metrics.md").write_text(markdown_table(result))
        for k, (cache, index, prediction, true) in enumerate(pictures):
            write_picture(out_dir / f"window_{k:03d}.png", comparison_picture(cache, index, repr_name, true, prediction))
    return result


def add_by_condition(by_condition: dict[str, np.ndarray], names: list[str], codes, prediction: np.ndarray,
                     truth: np.ndarray, num_classes: int, windows: dict[str, int] | None = None) -> None:
    """Adds each window's confusion matrix to its frame condition's (``codes`` index ``names``; an
    unknown code, 255, is left out), counting the windows when ``windows`` is given."""
    for k, code in enumerate(codes):
        if code < len(names):
            name = names[code]
            matrix = by_condition.setdefault(name, np.zeros((num_classes, num_classes), np.int64))
            matrix += confusion_matrix(prediction[k], truth[k], num_classes)
            if windows is not None:
                windows[name] = windows.get(name, 0) + 1


def _condition_names(caches: list[Cache]) -> list[str] | None:
    """The frame conditions all caches name alike (simulated test recordings), else None."""
    names = [tuple(c.array(CacheArray.GT_CONDITION).attrs["names"]) if c.has(CacheArray.GT_CONDITION) else None for c in caches]
    return list(names[0]) if names and names[0] and all(n == names[0] for n in names) else None


def markdown_table(result: Evaluation) -> str:
    lines = [f"Evaluation of `{result.checkpoint}` on {result.windows} windows against `{result.truth}`", "",
             "| metric | value |", "| --- | ---: |"]
    lines += [f"| {metric} | {value} |" for metric, value in result.rows()]
    lines += [f"| mIoU (nanmean), {name} frames ({scores['windows']} windows) | {scores['miou']['nanmean']:.4f} |"
              for name, scores in result.by_condition.items()]
    return "\n".join(lines) + "\n"


def comparison_picture(cache: Cache, index: int, repr_name: str, truth: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """Events, APS frame, truth and prediction side by side (BGR)."""
    from evtools.render import labels_picture, representation_picture, side_by_side

    panels = [representation_picture(cache, index, repr_name)[0]]
    if cache.has(CacheArray.APS):
        panels.append(np.repeat(cache.window(CacheArray.APS, index)[..., None], 3, axis=2))
    panels += [labels_picture(truth), labels_picture(prediction)]
    return side_by_side(panels)


def _confusion(cache: Cache, prediction: np.ndarray, truth: np.ndarray, num_classes: int, what: str) -> np.ndarray:
    """``confusion_matrix``, labels outside the classes a one-line error naming the cache."""
    try:
        return confusion_matrix(prediction, truth, num_classes)
    except ValueError as err:
        raise CacheError(cache.path, f"{what}: {err}") from None


def score(
    cache_paths: list[str | Path], prediction: str = CacheArray.LABELS, truth: str = CacheArray.GT_LABELS, num_classes: int = 6,
    by_condition: dict[str, np.ndarray] | None = None, windows_by_condition: dict[str, int] | None = None,
) -> tuple[np.ndarray, float]:
    """The confusion matrix of one label array against another over caches (pseudo-labels
    against the simulator's ground truth, say), and the fraction of truth-labelled pixels left
    out because the prediction abstained (255, below its confidence floor). A ``by_condition``
    dict also receives a confusion matrix per frame condition of caches that have
    ``gt_condition``, and ``windows_by_condition`` the number of windows of each."""
    require(2 <= num_classes <= MAX_CLASSES, "classes", CLASS_COUNTS, num_classes)
    confusion = np.zeros((num_classes, num_classes), np.int64)
    labelled = abstained = 0
    for path in cache_paths:
        opened = Cache(path)
        for name in (prediction, truth):
            if not opened.has(name):
                raise CacheError(opened.path, f"has no '{name}' array")
            array = opened.array(name)
            if array.dtype.kind not in "iu" or array.shape != (len(opened), opened.height, opened.width):
                raise CacheError(opened.path, f"'{name}' is not a label array ({array.dtype} {array.shape}; labels are "
                                              f"integers, a {opened.width}x{opened.height} image a window)")
        conditions = opened.array(CacheArray.GT_CONDITION) if by_condition is not None and opened.has(CacheArray.GT_CONDITION) else None
        for start in range(0, len(opened), 64):
            stop = min(start + 64, len(opened))
            predicted_block, true_block = opened.windows(prediction, start, stop), opened.windows(truth, start, stop)
            skipped = (predicted_block == IGNORE) & (true_block != IGNORE)
            labelled += int((true_block != IGNORE).sum())
            abstained += int(skipped.sum())
            true_block[skipped] = IGNORE
            predicted_block = np.where(predicted_block == IGNORE, 0, predicted_block)  # only where truth is now ignored
            confusion += _confusion(opened, predicted_block, true_block, num_classes, f"'{prediction}' against '{truth}'")
            if conditions is not None:
                add_by_condition(by_condition, conditions.attrs["names"], opened.windows(CacheArray.GT_CONDITION, start, stop),
                                 predicted_block, true_block, num_classes, windows_by_condition)
    return confusion, abstained / labelled if labelled else 0.0
