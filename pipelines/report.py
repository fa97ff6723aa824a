"""Writes a run's report: the teacher's label quality and each student's scores on the test
split, overall and for each APS condition of the test frames, as a Markdown table, and a picture
grid of one test window per student.

Usage: report.py RUN_DIR METHOD... (reads RUN_DIR/<method>/eval/metrics.json and the test caches
it names, writes RUN_DIR/report.md and RUN_DIR/grid.png)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np

from evtools.labels import CLASS_NAMES
from evtools.metrics import iou_per_class, miou, pixel_accuracy
from evtools.evaluate import score

WINDOW_PICTURE = "window_000.png"
TRAINED_ON = {"supervised": "pseudo-labels of events/", "kd-aps": "events/ + teacher on their APS",
              "evdistill": "events/ + labelled images + teacher"}


def teacher_scores(cache_paths: list[str], num_classes: int = len(CLASS_NAMES)) -> dict:
    """The pseudo-labels (the teacher on each window's APS frame) against the ground truth, as
    ``evtools score`` counts them, in the shape of an evaluation's metrics.json: overall and by
    frame condition."""
    by_condition: dict[str, np.ndarray] = {}
    windows: dict[str, int] = {}
    total, _ = score(cache_paths, num_classes=num_classes, by_condition=by_condition, windows_by_condition=windows)
    ious = iou_per_class(total, "nanmean")
    return {"pixel_accuracy": pixel_accuracy(total), "miou": {"nanmean": miou(total)},
            "iou": [None if np.isnan(v) else float(v) for v in ious],
            "by_condition": {n: {"windows": windows[n], "miou": {"nanmean": miou(m)}} for n, m in by_condition.items()}}


def condition_names(results: list[dict]) -> list[str]:
    names: list[str] = []
    for result in results:
        names += [n for n in result.get("by_condition", {}) if n not in names]
    return names


def main(run_dir: Path, methods: list[str]) -> None:
    evaluations = {m: json.loads((run_dir / m / "eval" / "metrics.json").read_text()) for m in methods}
    teacher = teacher_scores(next(iter(evaluations.values()))["caches"])
    conditions = condition_names([teacher, *evaluations.values()])
    windows = {n: teacher["by_condition"][n]["windows"] for n in conditions}
    lines = [
        "# Demo report (synthetic data)",
        "",
        "Everything here is measured on the simulator's synthetic demo data (`evtools simulate --preset demo`):",
        "it shows that the pipeline runs end to end, not how the methods do on real recordings.",
        "Scores are on the `test/` recordings against their ground truth, which no step saw before;",
        "students were selected on a validation split of `events/` (against pseudo-labels).",
        "The APS frames of `events/` and `test/` fail in half of the windows (night, over-exposure, motion",
        "blur); the events do not. mIoU (nanmean) overall and on the windows of each frame condition:",
        "",
        "| model | input | trained on | pixel acc. | mIoU | " + " | ".join(f"{n} ({windows[n]})" for n in conditions)
        + " | " + " | ".join(f"IoU {n}" for n in CLASS_NAMES) + " |",
        "| --- | --- | --- | ---: | ---: | " + " | ".join("---:" for _ in conditions) + " | "
        + " | ".join("---:" for _ in CLASS_NAMES) + " |",
        _row("teacher pseudo-labels", "APS frames", "labelled images", teacher, conditions),
    ]
    for method, result in evaluations.items():
        lines.append(_row(f"student: {method}", "events (voxel)", TRAINED_ON.get(method, method), result, conditions))
    if "evdistill" in evaluations and len(evaluations) > 1:
        ours = evaluations["evdistill"]["miou"]["nanmean"]
        best_name, best = max(((m, r["miou"]["nanmean"]) for m, r in evaluations.items() if m != "evdistill"),
                              key=lambda item: item[1])
        verdict = "beats" if ours > best else "does not beat"
        lines += ["", f"EvDistill {verdict} the best baseline in this run (one seed): {ours:.3f} against {best:.3f} "
                  f"mIoU (nanmean) for {best_name}. `make ablation` gives the mean and spread over seeds."]
    if (run_dir / "e2i.md").exists():  # written by e2i_report.py
        lines += ["", "The teacher on EvDistill's E2I reconstructions of the test windows' events, against the "
                  "teacher on their APS frames (mIoU nanmean against the ground truth):", "",
                  (run_dir / "e2i.md").read_text().strip()]
    lines += ["", "![one test window per student: events, APS, truth, prediction](grid.png)", "",
              "Rows of the grid, top to bottom: " + ", ".join(methods) + ". Columns: events, APS frame, "
              "ground truth, prediction.", ""]
    (run_dir / "report.md").write_text("\n".join(lines))
    pictures = [cv2.imread(str(run_dir / m / "eval" / WINDOW_PICTURE)) for m in methods]
    gap = np.zeros((4, pictures[0].shape[1], 3), np.uint8)
    grid = [pictures[0]]
    for picture in pictures[1:]:
        grid += [gap, picture]
    cv2.imwrite(str(run_dir / "grid.png"), np.concatenate(grid, axis=0))


def _row(model: str, inputs: str, trained_on: str, result: dict, conditions: list[str]) -> str:
    ious = " | ".join("absent" if v is None else f"{v:.3f}" for v in result.get("iou", [None] * len(CLASS_NAMES)))
    by = result.get("by_condition", {})
    cells = " | ".join(f"{by[n]['miou']['nanmean']:.3f}" if n in by else "" for n in conditions)
    return (f"| {model} | {inputs} | {trained_on} | {result['pixel_accuracy']:.3f} | {result['miou']['nanmean']:.3f} | "
            f"{cells} | {ious} |")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])
