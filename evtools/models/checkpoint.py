"""Checkpoints that carry their model's configuration, so that loading needs no flags.

A checkpoint is a torch file holding a plain dict: ``evtools_checkpoint`` (format version),
``kind`` (``"deeplabv3plus"``), ``config`` (the model configuration as a dict), ``state_dict``
and ``meta`` (what trained it: options, epochs, metrics). It loads with ``weights_only=True``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import zipfile
from pathlib import Path

import torch

from evtools.errors import InputError, first_line
from evtools.models.deeplab import DeepLabConfig, DeepLabV3Plus

CHECKPOINT_VERSION = 1
KINDS = {"deeplabv3plus": (DeepLabConfig, DeepLabV3Plus)}


def save_checkpoint(path: str | Path, model: DeepLabV3Plus, meta: dict | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    torch.save(
        {
            "evtools_checkpoint": CHECKPOINT_VERSION,
            "kind": "deeplabv3plus",
            "config": dataclasses.asdict(model.config),
            "state_dict": model.state_dict(),
            "meta": meta or {},
        },
        partial,
    )
    partial.replace(path)
    return path


def is_torchscript(path: str | Path) -> bool:
    """Whether ``path`` is a TorchScript archive (a zip holding ``constants.pkl``), which
    ``torch.load`` would hand to ``torch.jit.load`` with a warning."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("constants.pkl") for name in archive.namelist())
    except Exception:  # noqa: BLE001 - a damaged zip raises more than BadZipFile (as is_checkpoint caught before)
        return False


def is_checkpoint(path: str | Path) -> bool:
    if is_torchscript(path):
        return False
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - not a torch pickle at all
        return False
    return isinstance(content, dict) and "evtools_checkpoint" in content


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[DeepLabV3Plus, dict]:
    """The model (in eval mode, on ``device``) and the checkpoint's ``meta``. The weights are read
    onto the CPU and the built model is then moved, so that model and weights never disagree."""
    if is_torchscript(path):
        raise InputError(path, "a TorchScript file, not an evtools checkpoint (give a .pt that evtools train wrote)")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InputError(path, "no such file or directory") from None
    except Exception as err:  # noqa: BLE001 - torch raises many kinds for a file that is no checkpoint
        raise InputError(path, f"not an evtools checkpoint ({type(err).__name__})") from err
    if not isinstance(content, dict) or content.get("evtools_checkpoint") != CHECKPOINT_VERSION:
        raise InputError(path, "not an evtools checkpoint (version 1)")
    try:
        config_class, model_class = KINDS[content["kind"]]
        model = model_class(config_class(**content["config"]))
        model.load_state_dict(content["state_dict"])
        meta = dict(content.get("meta", {}))
    except Exception as err:  # noqa: BLE001 - a missing or wrong kind, config, weights or meta: each raises its own
        raise InputError(path, f"a damaged evtools checkpoint ({type(err).__name__}: {first_line(err)})") from err
    return model.to(device).eval(), meta


def file_fingerprint(path: str | Path) -> str:
    """sha256 of a whole file: a teacher is small enough to hash, and must match exactly."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
