import pytest
import torch
from cli import run_cli

from evtools.errors import InputError
from evtools.models.checkpoint import load_checkpoint, save_checkpoint
from evtools.models.deeplab import DeepLabConfig, DeepLabV3Plus

SMALL = DeepLabConfig(depth=18, width=0.5, in_channels=1, num_classes=6, aspp_channels=32, decoder_channels=32)


def test_released_evdistill_configuration_builds_and_runs():
    # DeepLabV3+ over ResNet-101, output stride 16, 6 classes, 256x512 (EvDistill's release)
    model = DeepLabV3Plus(DeepLabConfig(depth=101, in_channels=3, num_classes=6, output_stride=16)).eval()
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 256, 512))
    assert out["logits"].shape == (1, 6, 256, 512)
    assert out["encoder"].shape == (1, 256, 16, 32)  # stride 16
    assert out["decoder"].shape == (1, 256, 64, 128)  # stride 4
    assert 58e6 < sum(p.numel() for p in model.parameters()) < 61e6


@pytest.mark.parametrize("depth, stride", [(18, 8), (34, 16), (50, 16)])
def test_depths_strides_and_event_channels(depth, stride):
    config = DeepLabConfig(depth=depth, width=0.25, in_channels=10, num_classes=3, output_stride=stride,
                           aspp_channels=16, decoder_channels=16)
    out = DeepLabV3Plus(config).eval()(torch.zeros(2, 10, 64, 96))
    assert out["logits"].shape == (2, 3, 64, 96)
    assert out["encoder"].shape[-2:] == (64 // stride, 96 // stride)


@pytest.mark.parametrize("values, message", [
    (dict(depth=20), r"^depth must be one of \[18, 34, 50, 101\] \(the ResNet's\), got 20$"),
    (dict(output_stride=32), "^output_stride must be 8 or 16, got 32$"),
    (dict(width=0.0), r"^width must be above 0 and at most 4.0, got 0.0$"),
    (dict(width=4.5), r"^width must be above 0 and at most 4.0, got 4.5$"),
    (dict(in_channels=0), "^in_channels must be at least 1, got 0$"),
    (dict(decoder_channels=-2), "^decoder_channels must be from 1 to 4096, got -2$"),
    (dict(aspp_channels=4097), "^aspp_channels must be from 1 to 4096, got 4097$"),
    (dict(num_classes=1), r"^num_classes must be from 2 to 255 \(labels are uint8, 255 meaning no label\), got 1$"),
    (dict(num_classes=256), r"^num_classes must be from 2 to 255 \(labels are uint8, 255 meaning no label\), got 256$"),
])
def test_bad_configurations(values, message):
    with pytest.raises(ValueError, match=message):
        DeepLabConfig(**values)


def test_small_model_learns_a_batch():
    torch.manual_seed(0)
    model = DeepLabV3Plus(SMALL)
    x = torch.rand(4, 1, 64, 64)
    y = (x[:, 0] > 0.5).long()  # the class is the pixel's brightness
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = torch.nn.functional.cross_entropy(model(x)["logits"], y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    assert losses[-1] < 0.5 * losses[0]


def test_checkpoint_round_trip(tmp_path):
    model = DeepLabV3Plus(SMALL).eval()
    path = save_checkpoint(tmp_path / "m.pt", model, {"note": "test"})
    loaded, meta = load_checkpoint(path)
    assert loaded.config == SMALL and meta == {"note": "test"}
    x = torch.rand(1, 1, 32, 48)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x)["logits"], model(x)["logits"])
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="not an evtools checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")


def test_a_torchscript_file_given_as_a_checkpoint_is_one_line(tmp_path):
    path = tmp_path / "teacher.ts"
    torch.jit.script(torch.nn.Conv2d(1, 6, 3)).save(str(path))
    result = run_cli("eval", path, "--events", tmp_path / "none.zarr", "-o", tmp_path / "eval")
    assert (result.returncode, result.stderr) == (2, f"error: {path}: a TorchScript file, not an evtools checkpoint "
                                                     "(give a .pt that evtools train wrote)\n")  # torch's warning silent


@pytest.mark.parametrize("change, problem", [
    (lambda c: c.pop("kind"), "KeyError: 'kind'"),
    (lambda c: c.update(kind="unet"), "KeyError: 'unet'"),
    (lambda c: c["config"].update(depth=19), "ConfigError: depth must be one of [18, 34, 50, 101] (the ResNet's), got 19"),
    (lambda c: c["config"].update(colour=True), "TypeError: DeepLabConfig.__init__() got an unexpected keyword argument 'colour'"),
    (lambda c: c["state_dict"].pop("classifier.weight"), "RuntimeError: Error(s) in loading state_dict for DeepLabV3Plus:"),
    (lambda c: c.update(meta=[1]), "TypeError: cannot convert dictionary update sequence element #0 to a sequence"),
])
def test_a_damaged_checkpoint_is_one_line_naming_it(tmp_path, change, problem):
    path = save_checkpoint(tmp_path / "m.pt", DeepLabV3Plus(SMALL).eval())
    content = torch.load(path, weights_only=True)
    change(content)
    torch.save(content, path)
    with pytest.raises(InputError) as refused:
        load_checkpoint(path)
    assert str(refused.value) == f"{path}: a damaged evtools checkpoint ({problem})"


def test_checkpoint_loads_onto_the_requested_device(tmp_path):
    # "meta" stands for any device other than the CPU: a model left on the CPU fails this
    path = save_checkpoint(tmp_path / "m.pt", DeepLabV3Plus(SMALL).eval())
    loaded, _ = load_checkpoint(path, "meta")
    assert {p.device.type for p in loaded.parameters()} | {b.device.type for b in loaded.buffers()} == {"meta"}
    assert not loaded.training
