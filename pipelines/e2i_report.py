"""The teacher on E2I's reconstructions against the teacher on the APS frames, both scored against
the ground truth of the test caches, overall and per frame condition: how far E2I could stand in
for a failed frame. Reads an EvDistill run's state.pt (the student and its E2I head) and config.

Usage: e2i_report.py RUN_DIR TEACHER CACHE... (prints a Markdown table; writes RUN_DIR/e2i.json)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

from evtools.cache import Cache, CacheArray
from evtools.metrics import confusion_matrix, miou
from evtools.models.checkpoint import load_checkpoint
from evtools.tensors import WindowTensors
from evtools.train.config import load_config
from evtools.train.student import build_models


@torch.no_grad()
def main(run_dir: Path, teacher_path: Path, caches: list[Path]) -> dict:
    config = load_config(run_dir / "config.toml")
    student, _, method = build_models(config, teacher_path, "cpu")
    state = torch.load(run_dir / "state.pt", map_location="cpu", weights_only=True)
    student.load_state_dict(state["student"])
    method.load_state_dict(state["evdistill"])
    teacher, _ = load_checkpoint(teacher_path)
    student.eval(), method.eval()
    k = config.model.num_classes
    sums: dict[str, dict[str, np.ndarray]] = {}
    for path in caches:
        cache = Cache(path)
        tensors = WindowTensors(cache, config.repr)
        names = cache.array(CacheArray.GT_CONDITION).attrs["names"] if cache.has(CacheArray.GT_CONDITION) else None
        for start in range(0, len(cache), 8):
            stop = min(start + 8, len(cache))
            events = torch.from_numpy(np.asarray(tensors[start:stop], np.float32))
            aps = torch.from_numpy(cache.array(CacheArray.APS)[start:stop]).float().div(255).unsqueeze(1)
            truth = cache.array(CacheArray.GT_LABELS)[start:stop]
            reconstruction = method.e2i(student(events)["decoder"], aps.shape[-2:])
            predictions = {"teacher on APS": teacher(aps)["logits"].argmax(1).numpy(),
                           "teacher on E2I output": teacher(reconstruction)["logits"].argmax(1).numpy()}
            codes = cache.array(CacheArray.GT_CONDITION)[start:stop] if names else [255] * (stop - start)
            for j, code in enumerate(codes):
                for group in ("all", names[code] if names and code < len(names) else None):
                    if group is None:
                        continue
                    for source, predicted in predictions.items():
                        table = sums.setdefault(group, {}).setdefault(source, np.zeros((k, k), np.int64))
                        table += confusion_matrix(predicted[j], truth[j], k)
    result = {group: {source: miou(m) for source, m in tables.items()} for group, tables in sums.items()}
    (run_dir / "e2i.json").write_text(json.dumps(result, indent=2) + "\n")
    groups = list(result)
    print("| teacher input | " + " | ".join(groups) + " |")
    print("| --- | " + " | ".join("---:" for _ in groups) + " |")
    for source in ("teacher on APS", "teacher on E2I output"):
        print(f"| {source} | " + " | ".join(f"{result[g][source]:.3f}" for g in groups) + " |")
    return result


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), [Path(p) for p in sys.argv[3:]])
