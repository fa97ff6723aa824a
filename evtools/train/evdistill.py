"""EvDistill's losses for one step, with bidirectional modality reconstruction (BMR) and the gates
that decide, from measurements on the training data, how far each reconstruction is trusted.
docs/evdistill.md says what is the paper's, the released code's and this project's reading.

Per step, with a batch of event windows (events, their APS frame and the frame before) and a
batch of labelled images (image, the image before, labels):

- real pair: the teacher on each window's APS frame, the student on its events (distribution and
  affinity KD), weighted per window by ``frame_trust`` (a failed frame teaches nothing);
- E2I: an image head on the student's decoder reconstructs the APS frame (L1, trusted frames
  only). Once it reconstructs well (``e2i_gate``), the teacher on the reconstruction, without
  gradient, is a second target for the student on every window, the failed-frame ones included;
- I2E: generates the event tensor of a window from its two frames, anchored by L1 on the aligned
  (frames, events) pairs of trusted windows, with its own optimiser; on labelled images its output
  (without gradient to I2E) gives the student a task loss against the true labels and KD against
  the teacher on the image, weighted by ``i2e_gate``: how much better than predicting no events
  I2E is on real windows.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from evtools.models.bmr import FramePairToEvents, ImageHead, PatchDiscriminator
from evtools.train.common import frame_trust
from evtools.train.losses import AffinityKD, DistributionKD, TaskLoss, lsgan_discriminator, lsgan_generator

EMA_DECAY = 0.95
# E2I's pair joins once its L1 to trusted APS frames is 30% below that of each frame's mean
# brightness, fully at 60%. I2E's task and KD terms join once its output correlates with the real
# event tensors of trusted windows at 0.2, fully at 0.4 (windows paired at random: about 0.08).
# Correlation, not L1: on tensors that are zero almost everywhere, predicting no events is
# L1-optimal and useless; the diagnostics (L1 against zeros, non-zero share) are logged.
E2I_GATE = (0.3, 0.6)
I2E_GATE = (0.2, 0.4)


def correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of all the values of two tensors (0 when either is constant)."""
    a, b = a - a.mean(), b - b.mean()
    return (a * b).sum() / ((a * a).sum().sqrt() * (b * b).sum().sqrt()).clamp_min(1e-12)


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 7) -> torch.Tensor:
    """Mean structural similarity of two (B, 1, H, W) images in [0, 1] over box windows."""
    c1, c2 = 0.01**2, 0.03**2
    pool = lambda x: F.avg_pool2d(x, window, 1)  # noqa: E731
    mu_a, mu_b = pool(a), pool(b)
    var_a, var_b, cov = pool(a * a) - mu_a**2, pool(b * b) - mu_b**2, pool(a * b) - mu_a * mu_b
    return (((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))).mean()


def _gate(quality: float, bounds: tuple[float, float]) -> float:
    low, high = bounds
    return min(max((quality - low) / (high - low), 0.0), 1.0)


class EvDistill(nn.Module):
    """BMR's modules (E2I head, I2E, optional event discriminator) and the running measurements
    behind the gates; ``losses`` gives one step's weighted terms, ``diagnostics`` the epoch's."""

    def __init__(self, config, teacher: nn.Module):
        super().__init__()
        cfg, model = config.training, config.model
        self.weights, self.parts = config.weights, config.parts
        self.e2i = ImageHead(model.decoder_channels)
        self.i2e = FramePairToEvents(model.in_channels, cfg.generator_width)
        self.d_events = PatchDiscriminator(model.in_channels) if config.weights.adversarial > 0 else None
        self.teacher = [teacher]  # a list: the frozen teacher is not a submodule (nor in this state_dict)
        self.task, self.distribution, self.affinity = TaskLoss(), DistributionKD(cfg.temperature), AffinityKD(cfg.affinity_nodes)
        for name in ("e2i_l1", "e2i_mean_l1", "i2e_correlation_ema"):
            self.register_buffer(name, torch.tensor(float("nan")))
        self._sums: dict[str, tuple[float, int]] = {}

    def _track(self, name: str, value: torch.Tensor) -> None:
        value = value.detach()
        buffer = getattr(self, name)
        buffer.copy_(value if torch.isnan(buffer) else EMA_DECAY * buffer + (1 - EMA_DECAY) * value)

    @property
    def e2i_quality(self) -> float:
        return 1 - float(self.e2i_l1 / self.e2i_mean_l1) if not torch.isnan(self.e2i_l1) else 0.0

    @property
    def i2e_correlation(self) -> float:
        return float(self.i2e_correlation_ema) if not torch.isnan(self.i2e_correlation_ema) else 0.0

    def gates(self) -> dict[str, float]:
        return {"e2i_gate": _gate(self.e2i_quality, E2I_GATE), "i2e_gate": _gate(self.i2e_correlation, I2E_GATE)}

    def losses(self, batch: dict, image_batch: dict, student: nn.Module, i2e: nn.Module) -> dict[str, torch.Tensor]:
        """One step's weighted loss terms by name; ``student`` and ``i2e`` may be DDP wrappers."""
        w, parts, teacher = self.weights, self.parts, self.teacher[0]
        events, aps = batch["events"], batch["aps"]
        trust = frame_trust(aps)
        gates = self.gates()
        s_events = student(events)
        with torch.no_grad():
            t_aps = teacher(aps)
        terms = self._kd("real", s_events, t_aps, trust)
        if not parts.bmr:
            return terms

        # E2I: reconstruction on the student's decoder, learned from trusted frames only
        reconstruction = self.e2i(s_events["decoder"], aps.shape[-2:])
        per_frame = (reconstruction - aps).abs().mean((1, 2, 3))
        terms["reconstruction"] = w.reconstruction * (trust * per_frame).mean()
        if float(trust.sum()) > 0:
            self._track("e2i_l1", (trust * per_frame).sum() / trust.sum())
            mean_l1 = (aps - aps.mean((2, 3), keepdim=True)).abs().mean((1, 2, 3))
            self._track("e2i_mean_l1", (trust * mean_l1).sum() / trust.sum())
        if gates["e2i_gate"] > 0:
            with torch.no_grad():
                t_reconstruction = teacher(reconstruction.detach())  # stop-gradient on the teacher's side
            for name, value in self._kd("e2i", s_events, t_reconstruction, None).items():
                terms[name] = gates["e2i_gate"] * value

        # I2E: anchored on the aligned pairs where both frames are trusted
        pair_trust = trust * frame_trust(batch["aps_previous"])
        generated = i2e(batch["aps_previous"], aps)
        per_window = (generated - events).abs().mean((1, 2, 3))
        terms["i2e"] = w.i2e * (pair_trust * per_window).mean()
        if bool((pair_trust > 0.5).any()):
            trusted = pair_trust > 0.5
            self._track("i2e_correlation_ema", correlation(generated[trusted], events[trusted]))

        images, labels = image_batch["aps"], image_batch["labels"]
        fake_events = i2e(image_batch["aps_previous"], images)
        if self.d_events is not None:
            terms["adversarial"] = w.adversarial * lsgan_generator(self.d_events(fake_events))
        if gates["i2e_gate"] > 0:
            s_fake = student(fake_events.detach())  # the student's losses never move I2E
            with torch.no_grad():
                t_images = teacher(images)
            terms["task"] = gates["i2e_gate"] * w.task * self.task(s_fake["logits"], labels)
            for name, value in self._kd("i2e", s_fake, t_images, None).items():
                terms[name] = gates["i2e_gate"] * value
        self._observe(trust, reconstruction, aps, generated, events, fake_events, gates)
        return terms

    def _kd(self, pair: str, student_out: dict, teacher_out: dict, weights: torch.Tensor | None) -> dict[str, torch.Tensor]:
        terms = {}
        if self.parts.distribution:
            terms[f"distribution_{pair}"] = self.weights.distribution * self.distribution(
                student_out["logits"], teacher_out["logits"], weights)
        if self.parts.affinity:
            terms[f"affinity_{pair}"] = self.weights.affinity * self.affinity(
                student_out["decoder"], teacher_out["decoder"], weights)
        return terms

    def discriminator_step(self, batch: dict, image_batch: dict, i2e: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        with torch.no_grad():
            fake_events = i2e(image_batch["aps_previous"], image_batch["aps"])
        loss = lsgan_discriminator(self.d_events(batch["events"]), self.d_events(fake_events))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    @torch.no_grad()
    def _observe(self, trust, reconstruction, aps, generated, events, fake_events, gates) -> None:
        trusted = trust > 0.5
        values = {"trusted_frames": float(trusted.float().mean()), **gates,
                  "e2i_quality": self.e2i_quality, "i2e_correlation": self.i2e_correlation,
                  "i2e_nonzero": float((fake_events.abs() > 0.05).float().mean()),
                  "events_nonzero": float((events.abs() > 0.05).float().mean())}
        if bool(trusted.any()):
            values["e2i_l1"] = float((reconstruction[trusted] - aps[trusted]).abs().mean())
            values["e2i_ssim"] = float(ssim(reconstruction[trusted], aps[trusted]))
            values["i2e_l1"] = float((generated[trusted] - events[trusted]).abs().mean())
            values["zero_l1"] = float(events[trusted].abs().mean())
        for name, value in values.items():
            total, count = self._sums.get(name, (0.0, 0))
            self._sums[name] = (total + value, count + 1)

    def diagnostics(self) -> dict[str, float]:
        """The means since the last call of what ``losses`` measured (``diag_`` names), then reset."""
        means = {f"diag_{name}": total / count for name, (total, count) in self._sums.items()}
        self._sums = {}
        return means
