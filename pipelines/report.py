"""Writes a run's report: the teacher's label quality and each student's scores on the test
split, as a Markdown table, and a picture grid of one test window per student.

Usage: report.py RUN_DIR METHOD... (reads RUN_DIR/teacher_labels.json and
RUN_DIR/<method>/eval/metrics.json, writes RUN_DIR/report.md and RUN_DIR/grid.png)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np

from evtools.evaluate import CLASS_NAMES

WINDOW_PICTURE = "window_000.png"


def main(run_dir: Path, methods: list[str]) -> None:
    labels = json.loads((run_dir / "teacher_labels.json").read_text())
    evaluations = {m: json.loads((run_dir / m / "eval" / "metrics.json").read_text()) for m in methods}
    lines = [
        "# Demo report (synthetic data)",
        "",
        "Everything here is measured on the simulator's synthetic demo data (`evtools simulate --preset demo`):",
        "it shows that the pipeline runs end to end, not how the methods do on real recordings.",
        "Scores are on the `test/` recordings against their ground truth, which no step saw before;",
        "students were selected on a validation split of `events/` (against pseudo-labels).",
        "",
        "| model | input | trained on | pixel acc. | mIoU (nanmean) | mIoU (zero) | mIoU (clamped) | "
        + " | ".join(f"IoU {n}" for n in CLASS_NAMES) + " |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | " + " | ".join("---:" for _ in CLASS_NAMES) + " |",
        _row("teacher pseudo-labels", "APS frames", "labelled images", labels),
    ]
    trained_on = {"supervised": "pseudo-labels of events/", "kd-aps": "events/ + teacher on their APS",
                  "evdistill": "events/ + labelled images + teacher"}
    for method, result in evaluations.items():
        lines.append(_row(f"student: {method}", "events (voxel)", trained_on.get(method, method), result))
    if "evdistill" in evaluations and len(evaluations) > 1:
        ours = evaluations["evdistill"]["miou"]["nanmean"]
        best_name, best = max(((m, r["miou"]["nanmean"]) for m, r in evaluations.items() if m != "evdistill"),
                              key=lambda item: item[1])
        verdict = "beats" if ours > best else "does not beat"
        lines += ["", f"EvDistill {verdict} the best baseline here: {ours:.3f} against {best:.3f} mIoU (nanmean) for "
                  f"{best_name}, with this run's short CPU schedule and synthetic data."]
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


def _row(model: str, inputs: str, trained_on: str, result: dict) -> str:
    ious = " | ".join("absent" if v is None else f"{v:.3f}" for v in result["iou"])
    m = result["miou"]
    return (f"| {model} | {inputs} | {trained_on} | {result['pixel_accuracy']:.3f} | {m['nanmean']:.3f} | "
            f"{m['zero']:.3f} | {m['clamped']:.3f} | {ious} |")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])
