"""Each loss on hand-made inputs, and where its gradients go."""

import math

import pytest
import torch

from evtools.models.bmr import Generator, PatchDiscriminator
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


def test_kd_gradients_reach_student_and_generator_but_not_the_frozen_teacher():
    config = DeepLabConfig(depth=18, width=0.25, in_channels=1, num_classes=3, aspp_channels=8, decoder_channels=8)
    teacher = DeepLabV3Plus(config).eval().requires_grad_(False)
    student = DeepLabV3Plus(DeepLabConfig(**{**config.__dict__, "in_channels": 2}))
    e2i = Generator(2, 1, width=4, residual_blocks=1, image_output=True)
    events = torch.rand(2, 2, 32, 32)
    fake_image = e2i(events)
    t_out, s_out = teacher(fake_image), student(events)
    loss = DistributionKD()(s_out["logits"], t_out["logits"]) + AffinityKD(64)(s_out["decoder"], t_out["decoder"])
    loss.backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in e2i.parameters())


def test_generators_and_discriminator_shapes():
    assert Generator(5, 1, image_output=True)(torch.rand(1, 5, 30, 42)).shape == (1, 1, 30, 42)
    out = Generator(1, 5)(torch.rand(1, 1, 32, 48))
    assert out.shape == (1, 5, 32, 48)
    assert PatchDiscriminator(1)(torch.rand(2, 1, 32, 48)).shape == (2, 1, 4, 6)
