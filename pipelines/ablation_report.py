"""Mean and standard deviation of each variant's test scores over its seeds, overall and on the
windows of each APS frame condition, with the diagnostics of EvDistill's last epoch.
Usage: ablation_report.py ABLATION_DIR VARIANT... (reads VARIANT-seed*/eval/metrics.json and
VARIANT-seed*/metrics.jsonl)"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

DIAGNOSTICS = ("diag_e2i_l1", "diag_e2i_ssim", "diag_e2i_quality", "diag_e2i_gate", "diag_i2e_l1", "diag_zero_l1",
               "diag_i2e_nonzero", "diag_events_nonzero", "diag_i2e_correlation", "diag_i2e_gate", "diag_trusted_frames")


def _spread(values: list[float]) -> str:
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}"


def main(root: Path, variants: list[str]) -> None:
    runs = {v: [json.loads(p.read_text()) for p in sorted(root.glob(f"{v}-seed*/eval/metrics.json"))] for v in variants}
    runs = {v: r for v, r in runs.items() if r}
    conditions: list[str] = []
    for results in runs.values():
        for result in results:
            conditions += [n for n in result.get("by_condition", {}) if n not in conditions]
    lines = ["# Baselines and EvDistill ablation (synthetic demo data)", "",
             "Each row: one training variant with several seeds, scored on `test/` against its ground truth (mean ±",
             "population standard deviation over seeds), overall and on the windows of each APS frame condition.",
             "Synthetic data: these numbers show what each part does here, not on real recordings.", "",
             "| variant | seeds | mIoU (nanmean) | pixel accuracy | " + " | ".join(conditions) + " |",
             "| --- | ---: | ---: | ---: | " + " | ".join("---:" for _ in conditions) + " |"]
    for variant, results in runs.items():
        cells = [_spread([r["miou"]["nanmean"] for r in results]), _spread([r["pixel_accuracy"] for r in results])]
        for name in conditions:
            values = [r["by_condition"][name]["miou"]["nanmean"] for r in results if name in r.get("by_condition", {})]
            cells.append(_spread(values) if values else "")
        lines.append(f"| {variant} | {len(results)} | " + " | ".join(cells) + " |")
    diagnosed = {}
    for variant in runs:
        last = [json.loads(p.read_text().splitlines()[-1]) for p in sorted(root.glob(f"{variant}-seed*/metrics.jsonl"))
                if p.read_text().strip()]
        values = {k: [m[k] for m in last if k in m] for k in DIAGNOSTICS}
        if any(values.values()):
            diagnosed[variant] = values
    if diagnosed:
        shown = [k for k in DIAGNOSTICS if any(v[k] for v in diagnosed.values())]
        lines += ["", "EvDistill's diagnostics in the last epoch (training split, mean over seeds; docs/evdistill.md):", "",
                  "| variant | " + " | ".join(k.removeprefix("diag_") for k in shown) + " |",
                  "| --- | " + " | ".join("---:" for _ in shown) + " |"]
        for variant, values in diagnosed.items():
            lines.append(f"| {variant} | " + " | ".join(f"{np.mean(values[k]):.3f}" if values[k] else "" for k in shown) + " |")
    (root / "report.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])
