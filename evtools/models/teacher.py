"""A segmentation teacher run on APS frames: an evtools checkpoint, or a TorchScript file mapping
a (B, C, H, W) float image batch to (B, K, H, W) logits (how a teacher trained elsewhere, on
Cityscapes say, comes in). Its K classes are mapped to the output classes by summing their
softmax probabilities (a class mapped to 255 only lowers the confidence). Test-time augmentation
as Ev-SegNet: horizontal flip and scales, softmax outputs averaged."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from evtools.devices import check_device
from evtools.errors import EvtoolsError, InputError, first_line, require
from evtools.labels import CLASS_COUNTS, IGNORE, MAX_CLASSES
from evtools.models.checkpoint import file_fingerprint, is_checkpoint, load_checkpoint

CITYSCAPES19 = ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
                "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle",
                "bicycle")
# Ev-SegNet's mapping of the 19 Cityscapes classes onto the 6 DDD17 classes
CITYSCAPES19_TO_DDD17 = (0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 1, 4, 4, 5, 5, 5, 5, 5, 5)
BUILTIN_CLASS_MAPS = {"cityscapes19-to-ddd17": CITYSCAPES19_TO_DDD17}
MIN_SCALE, MAX_SCALE = 0.1, 4.0  # of the test-time scales


def load_class_map(name: str | None) -> tuple[int, ...] | None:
    """A built-in class map, a JSON list given as it is (``[0, 0, 1, 255]``) or a JSON file of one."""
    if name is None:
        return None
    if name in BUILTIN_CLASS_MAPS:
        return BUILTIN_CLASS_MAPS[name]
    inline = name.lstrip().startswith("[")
    where = "--class-map" if inline else str(name)
    if not inline and not Path(name).is_file():
        raise InputError(name, f"no such class map (built in: {', '.join(BUILTIN_CLASS_MAPS)}; or a JSON list)")
    try:
        mapping = json.loads(name if inline else Path(name).read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise EvtoolsError(f"{where}: not a JSON class map ({first_line(err)})") from None
    # bool is an int to Python, not a class
    if (not isinstance(mapping, list) or not mapping
            or not all(type(v) is int and (0 <= v < MAX_CLASSES or v == IGNORE) for v in mapping)):
        raise EvtoolsError(f"{where}: a class map is a JSON list of integers, teacher class -> output class "
                           f"(0 to {MAX_CLASSES - 1}) or {IGNORE}")
    return tuple(mapping)


@dataclass(frozen=True)
class TeacherSpec:
    """A teacher file and how to run it: an evtools checkpoint, or TorchScript with the channels
    and normalisation it expects; its classes mapped onto ``num_classes``; test-time scales and flip.
    ``num_classes`` None: the teacher's own classes, or with a class map one more than its largest
    target; given, the teacher's classes (mapped) must be fewer."""

    teacher: Path
    in_channels: int | None = None  # TorchScript teachers: channels they expect (the gray frame is repeated)
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    class_map: str | None = None  # a built-in name, a JSON list or a JSON file of one: teacher class -> output class or 255
    num_classes: int | None = None
    scales: tuple[float, ...] = (0.75, 1.0, 1.5)
    flip: bool = True
    device: str = "cpu"

    def __post_init__(self) -> None:
        require(self.in_channels is None or self.in_channels >= 1, "in_channels", "at least 1", self.in_channels)
        require((self.mean is None) == (self.std is None), "mean and std", "given together", (self.mean, self.std))
        if self.mean is not None:
            require(len(self.mean) == len(self.std) and all(map(math.isfinite, self.mean)), "mean", "finite numbers, as many "
                    "as std has", self.mean)
            require(all(math.isfinite(v) and v > 0 for v in self.std), "std", "finite numbers above 0", self.std)
        require(self.num_classes is None or 2 <= self.num_classes <= MAX_CLASSES, "num_classes", CLASS_COUNTS,
                self.num_classes)
        # the frame resized by each scale: a tenth (26 rows of a DAVIS346's) to four times
        require(bool(self.scales) and all(MIN_SCALE <= v <= MAX_SCALE for v in self.scales), "scales",
                f"from {MIN_SCALE} to {MAX_SCALE}", self.scales)


class Teacher:
    """A loaded teacher: ``probabilities(images)`` gives (B, K_out, H, W) averaged over the TTA."""

    def __init__(self, spec: TeacherSpec):
        check_device(spec.device)
        path = Path(spec.teacher)
        if not path.is_file():
            raise InputError(path, "no such teacher file")
        self.fingerprint = file_fingerprint(path)
        self.classes: int | None = None  # the network's; a TorchScript teacher's once it has run
        if is_checkpoint(path):
            model, meta = load_checkpoint(path, spec.device)
            self.in_channels, self.classes = model.config.in_channels, model.config.num_classes
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
        if spec.mean is not None and len(spec.mean) not in (1, self.in_channels):
            takes = "1 value" if self.in_channels == 1 else f"1 or {self.in_channels} values"
            raise EvtoolsError(f"{path}: --mean and --std give {len(spec.mean)} values a channel, the teacher takes "
                               f"{self.in_channels} channel(s): give {takes}")
        self.spec = spec
        self.class_map = load_class_map(spec.class_map)
        if self.class_map is not None and spec.num_classes is not None:
            beyond = [target for target in self.class_map if target != IGNORE and not 0 <= target < spec.num_classes]
            if beyond:
                raise EvtoolsError(f"{spec.class_map}: the class map sends a class to {beyond[0]}, not one of the "
                                   f"{spec.num_classes} classes (0 to {spec.num_classes - 1}) or {IGNORE}")
        if self.classes is not None:  # an evtools checkpoint's classes are known before it runs
            self._require_map_fits(self.classes)

    @property
    def output_classes(self) -> int | None:
        """The labels' classes (None: a TorchScript teacher without a class map that has not run)."""
        if self.spec.num_classes is not None:
            return self.spec.num_classes
        if self.class_map is not None:
            return 1 + max((target for target in self.class_map if target != IGNORE), default=1)
        return self.classes

    def _prepare(self, frames: torch.Tensor) -> torch.Tensor:
        x = frames.float().div(255.0).unsqueeze(1).repeat(1, self.in_channels, 1, 1)
        if self.spec.mean is not None:
            x = (x - torch.tensor(self.spec.mean).view(1, -1, 1, 1)) / torch.tensor(self.spec.std).view(1, -1, 1, 1)
        return x

    def _require_map_fits(self, classes: int) -> None:
        if self.class_map is not None and len(self.class_map) != classes:
            raise EvtoolsError(f"{self.spec.teacher}: the class map has {len(self.class_map)} entries, the teacher "
                               f"{classes} classes")

    def _mapped(self, probabilities: torch.Tensor) -> torch.Tensor:
        if self.class_map is None:
            return probabilities
        self._require_map_fits(probabilities.shape[1])
        out = probabilities.new_zeros((probabilities.shape[0], self.output_classes, *probabilities.shape[2:]))
        for source, target in enumerate(self.class_map):
            if target != IGNORE:
                out[:, target] += probabilities[:, source]
        return out

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        """The teacher's (B, K, H', W') logits; a teacher (a user's TorchScript file) that fails or
        gives another shape is a one-line error naming its file."""
        try:
            logits = self._forward(x)
        except Exception as err:  # noqa: BLE001 - whatever the user's network raises
            # TorchScript puts the failed operation's own error last, after its traceback
            cause = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
            raise EvtoolsError(f"{self.spec.teacher}: the teacher failed on a {tuple(x.shape)} batch ({cause})") from err
        if not isinstance(logits, torch.Tensor) or logits.ndim != 4 or logits.shape[0] != x.shape[0]:
            shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
            raise EvtoolsError(f"{self.spec.teacher}: the teacher gave {shape} for a {tuple(x.shape)} batch, not "
                               "(B, K, H, W) logits")
        self.classes = logits.shape[1]
        if self.class_map is None and self.classes > (self.spec.num_classes or MAX_CLASSES):
            most = (f"the {self.spec.num_classes} asked for" if self.spec.num_classes is not None
                    else f"the {MAX_CLASSES} that uint8 labels hold ({IGNORE} meaning no label)")
            raise EvtoolsError(f"{self.spec.teacher}: the teacher has {self.classes} classes, more than {most}: "
                               "give a class map")
        return logits

    @torch.no_grad()
    def probabilities(self, frames: np.ndarray) -> torch.Tensor:
        """(B, K, H, W) class probabilities of uint8 frames (B, H, W), averaged over the TTA."""
        x = self._prepare(torch.from_numpy(frames)).to(self.spec.device)
        size = x.shape[-2:]
        total, count = None, 0
        not_a_number = torch.zeros((), dtype=torch.bool, device=x.device)
        for scale in self.spec.scales:
            scaled = x if scale == 1.0 else F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
            for flipped in ((False, True) if self.spec.flip else (False,)):
                logits = self._logits(scaled.flip(-1) if flipped else scaled)
                probabilities = logits.float().softmax(1)
                # NaN or infinite logits, before resizing can drop them; gathered on the device,
                # so that the passes are not each waited for
                not_a_number |= probabilities.isnan().any()
                if flipped:
                    probabilities = probabilities.flip(-1)
                if probabilities.shape[-2:] != size:
                    probabilities = F.interpolate(probabilities, size=size, mode="bilinear", align_corners=False)
                total = probabilities if total is None else total + probabilities
                count += 1
        if not_a_number:  # labels from them would be noise
            raise EvtoolsError(f"{self.spec.teacher}: the teacher gave NaN or infinite logits for a {tuple(x.shape)} batch")
        return self._mapped(total / count).cpu()
