"""Each loss on hand-made inputs, and where its gradients go."""

import math

import pytest
import torch

from evtools.models.bmr import FramePairToEvents, Generator, ImageHead, PatchDiscriminator, event_prior
from evtools.models.deeplab import DeepLabConfig, DeepLabV3Plus
from evtools.train.losses import (AffinityKD, DistributionKD, TaskLoss, affinity, lsgan_discriminator, lsgan_generator,
                                  pooled_grid)


def test_task_loss_ignores_255():
    logits = torch.tensor([[[[2.0]], [[0.0]]]])  # one pixel, class 0 favoured
    assert TaskLoss()(logits, torch.tensor([[[0]]])).item() == pytest.approx(math.log(1 + math.exp(-2)))
    assert TaskLoss()(logits.repeat(1, 1, 1, 2), torch.tensor([[[0, 255]]])).item() == pytest.approx(math.log(1 + math.exp(-2)))


def test_distribution_kd_values():
    teacher = torch.tensor([[[[0.0]], [[0.0]]]])  # uniform
    student = torch.tensor([[[[2.0]], [[0.0]]]])
    # T = 1: KL(u || softmax(2, 0)) = 0.5 log(0.5 / p0) + 0.5 log(0.5 / p1)
    p0 = math.exp(2) / (1 + math.exp(2))
    expected = 0.5 * math.log(0.5 / p0) + 0.5 * math.log(0.5 / (1 - p0))
    assert DistributionKD(1.0)(student, teacher).item() == pytest.approx(expected, rel=1e-5)
    # T = 2 scales the logits by 1/2 and the loss by 4
    p0 = math.exp(1) / (1 + math.exp(1))
    expected = 4 * (0.5 * math.log(0.5 / p0) + 0.5 * math.log(0.5 / (1 - p0)))
    assert DistributionKD(2.0)(student, teacher).item() == pytest.approx(expected, rel=1e-5)
    assert DistributionKD(2.0)(teacher, teacher).item() == pytest.approx(0.0, abs=1e-7)


def test_affinity_of_hand_made_features():
    # two positions with orthogonal features, one parallel to the first
    features = torch.tensor([[[[1.0, 0.0, 2.0]], [[0.0, 1.0, 0.0]]]])  # (1, C=2, 1, 3)
    expected = torch.tensor([[[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 1.0]]])
    torch.testing.assert_close(affinity(features, 1024), expected)
    other = torch.tensor([[[[1.0, 1.0, 2.0]], [[0.0, 1.0, 0.0]]]])  # position 1 at 45 degrees
    c = 1 / math.sqrt(2)
    # |A - A'| differs at (0,1), (1,0), (1,2), (2,1) by c each: mean over 9
    assert AffinityKD()(other, features).item() == pytest.approx(4 * c / 9, rel=1e-5)


def test_affinity_pools_to_at_most_max_nodes():
    assert pooled_grid(64, 128, 1024) == (22, 45)
    assert pooled_grid(16, 16, 1024) == (16, 16)
    assert affinity(torch.rand(2, 8, 64, 128), 1024).shape == (2, 990, 990)


def test_lsgan_values():
    assert lsgan_generator(torch.ones(3)).item() == 0.0
    assert lsgan_discriminator(torch.ones(3), torch.zeros(3)).item() == 0.0
    assert lsgan_discriminator(torch.zeros(3), torch.ones(3)).item() == pytest.approx(1.0)


def test_kd_gradients_reach_student_and_e2i_head_but_not_the_frozen_teacher():
    config = DeepLabConfig(depth=18, width=0.25, in_channels=1, num_classes=3, aspp_channels=8, decoder_channels=8)
    teacher = DeepLabV3Plus(config).eval().requires_grad_(False)
    student = DeepLabV3Plus(DeepLabConfig(**{**config.__dict__, "in_channels": 2}))
    e2i = ImageHead(8, width=4)
    events = torch.rand(2, 2, 32, 32)
    s_out = student(events)
    reconstruction = e2i(s_out["decoder"], (32, 32))
    t_out = teacher(torch.rand(2, 1, 32, 32))
    loss = (DistributionKD()(s_out["logits"], t_out["logits"]) + AffinityKD(64)(s_out["decoder"], t_out["decoder"])
            + reconstruction.mean())
    loss.backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())
    assert all(p.grad is not None for p in e2i.parameters())


def test_kd_weights_scale_each_sample():
    student, teacher = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    kd = DistributionKD()
    each = torch.stack([kd(student[k : k + 1], teacher[k : k + 1]) for k in range(2)])
    assert kd(student, teacher, torch.tensor([1.0, 0.0])).item() == pytest.approx(each[0].item() / 2, rel=1e-5)
    assert kd(student, teacher, torch.tensor([1.0, 1.0])).item() == pytest.approx(kd(student, teacher).item(), rel=1e-5)
    features_s, features_t = torch.randn(2, 4, 4, 4), torch.randn(2, 4, 4, 4)
    affinity = AffinityKD(16)
    assert affinity(features_s, features_t, torch.tensor([0.0, 0.0])).item() == 0.0


def test_event_prior_counts_threshold_crossings_over_the_bins():
    previous = torch.full((1, 1, 2, 2), 0.5)
    # linear intensity x e^1.1 on the left column (1.1 of log intensity): 4 whole crossings of 0.25;
    # x e^-0.2 on the right column: less than one threshold, no event
    brighter = (0.5**2.2 * math.exp(1.1)) ** (1 / 2.2)
    darker = (0.5**2.2 * math.exp(-0.2)) ** (1 / 2.2)
    current = torch.tensor([[[[brighter, darker], [brighter, darker]]]])
    prior = event_prior(previous, current, channels=4)
    assert prior.shape == (1, 4, 2, 2)
    assert torch.equal(prior[0, :, :, 0], torch.full((4, 2), 1.0))  # 4 events over 4 bins
    assert torch.equal(prior[0, :, :, 1], torch.zeros(4, 2))
    assert torch.equal(event_prior(current, previous, 4)[0, :, :, 0], torch.full((4, 2), -1.0))
    # I2E starts as the prior: its residual's last layer is zero
    frames = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    assert torch.equal(FramePairToEvents(4, width=4)(*frames), event_prior(*frames, 4))


def test_generators_and_discriminator_shapes():
    assert ImageHead(8)(torch.rand(1, 8, 8, 11), (30, 42)).shape == (1, 1, 30, 42)
    out = Generator(1, 5)(torch.rand(1, 1, 32, 48))
    assert out.shape == (1, 5, 32, 48)
    assert FramePairToEvents(5)(torch.rand(1, 1, 30, 42), torch.rand(1, 1, 30, 42)).shape == (1, 5, 30, 42)
    assert PatchDiscriminator(1)(torch.rand(2, 1, 32, 48)).shape == (2, 1, 4, 6)


def test_frame_trust_from_exposure_alone():
    from evtools.train.common import frame_trust, ignore_untrusted_frames

    rng = torch.Generator().manual_seed(0)
    texture = torch.rand(1, 1, 32, 32, generator=rng)  # contrast (std) about 0.29
    frames = torch.cat([
        0.2 + 0.6 * texture,  # mean 0.5, std 0.17: trusted
        0.02 + 0.06 * texture,  # night: mean 0.05
        torch.ones(1, 1, 32, 32),  # saturated
        torch.full((1, 1, 32, 32), 0.5),  # flat
        0.1 + 0.1 * texture,  # mean 0.15, std 0.029: too little contrast
        torch.cat([torch.zeros(1, 1, 16, 32), torch.full((1, 1, 16, 32), 0.23)], 2),  # mean 0.115, std 0.115
    ])
    trust = frame_trust(frames)
    assert trust[:4].tolist() == [1.0, 0.0, 0.0, 0.0]
    assert float(trust[4]) == 0.0
    assert float(trust[5]) == pytest.approx(0.5, abs=1e-5)  # halfway up the ramp from 0.08 to 0.15
    labels = torch.zeros(32, 32, dtype=torch.long)
    assert ignore_untrusted_frames({"aps": frames[0], "labels": labels})["labels"].max() == 0
    assert (ignore_untrusted_frames({"aps": frames[1], "labels": labels})["labels"] == 255).all()


def test_correlation_and_gates():
    from evtools.train.evdistill import _gate, correlation

    a = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert correlation(a, 2 * a + 1).item() == pytest.approx(1.0)
    assert correlation(a, -a).item() == pytest.approx(-1.0)
    assert correlation(a, torch.zeros(4)).item() == 0.0  # predicting no events says nothing
    assert [_gate(q, (0.2, 0.4)) for q in (0.1, 0.2, 0.3, 0.4, 0.9)] == pytest.approx([0.0, 0.0, 0.5, 1.0, 1.0])


def test_evdistill_terms_train_what_they_should_and_nothing_else():
    from evtools.train.config import load_config
    from evtools.train.evdistill import EvDistill

    config = load_config(None, ["model.width=0.25", "model.aspp_channels=8", "model.decoder_channels=8",
                                "model.in_channels=3", "model.num_classes=3", "training.generator_width=4",
                                "training.affinity_nodes=16"])
    teacher = DeepLabV3Plus(DeepLabConfig(depth=18, width=0.25, in_channels=1, num_classes=3, aspp_channels=8,
                                          decoder_channels=8)).eval().requires_grad_(False)
    student = DeepLabV3Plus(config.model)
    method = EvDistill(config, teacher)
    rng = torch.Generator().manual_seed(1)
    frames = lambda: 0.2 + 0.6 * torch.rand(2, 1, 32, 32, generator=rng)  # noqa: E731 - trusted frames
    batch = {"events": torch.randn(2, 3, 32, 32, generator=rng), "aps": frames(), "aps_previous": frames()}
    images = {"aps": frames(), "aps_previous": frames(), "labels": torch.randint(0, 3, (2, 32, 32), generator=rng)}
    assert "task" not in method.losses(batch, images, student, method.i2e)  # I2E not yet measured event-like
    method.i2e_correlation_ema.fill_(0.3)  # halfway through the I2E gate
    assert method.gates()["i2e_gate"] == pytest.approx(0.5)
    terms = method.losses(batch, images, student, method.i2e)
    assert {"distribution_real", "affinity_real", "reconstruction", "i2e", "task", "distribution_i2e",
            "affinity_i2e"} <= set(terms)

    def moved(name):
        for module in (student, method, teacher):
            module.zero_grad(set_to_none=True)
        terms[name].backward(retain_graph=True)
        return {part: any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in module.parameters())
                for part, module in (("student", student), ("e2i", method.e2i), ("i2e", method.i2e),
                                     ("teacher", teacher))}

    assert moved("i2e") == {"student": False, "e2i": False, "i2e": True, "teacher": False}
    assert moved("task") == {"student": True, "e2i": False, "i2e": False, "teacher": False}
    assert moved("reconstruction") == {"student": True, "e2i": True, "i2e": False, "teacher": False}
    assert moved("distribution_real") == {"student": True, "e2i": False, "i2e": False, "teacher": False}
