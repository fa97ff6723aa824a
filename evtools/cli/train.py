"""``evtools train``: the image teacher (``train teacher``); students join with EvDistill."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress, TextColumn

from evtools.cli.console import progress, stdout
from evtools.cli.options import OptionError
from evtools.cache import location
from evtools.progress import Progress as ProgressCallback, ProgressUpdate

app = typer.Typer(help="Train networks: the image teacher, event students.", no_args_is_help=True, add_completion=False)


def train_progress() -> Progress:
    return progress(TextColumn("loss {task.fields[loss]:.3f} ({task.fields[terms]}), {task.fields[rate]:.1f} samples/s"))


def _shown(bar: Progress, task) -> ProgressCallback:
    """Training updates on the bar: steps, loss, samples per second and the loss terms."""
    def show(update: ProgressUpdate) -> None:
        terms = " ".join(f"{name} {value:.3f}" for name, value in update.figures["terms"].items())
        bar.update(task, completed=update.done, total=update.total, loss=update.figures["loss"],
                   rate=update.figures["rate"], terms=terms)

    return show


def size_pair(option: str, text: str | None) -> tuple[int, int] | None:
    if text is None or text.lower() == "none":
        return None
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise OptionError(f"{option}: '{text}' is not HEIGHTxWIDTH, such as 192x256") from None
    return height, width


@app.command()
def teacher(
    train: Annotated[list[Path], typer.Argument(help="Labelled images: a folder of PNG pairs (frames/ and masks/), or caches with aps and labels.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The checkpoint to write.")],
    val: Annotated[list[Path] | None, typer.Option(help="Validation images or caches: mIoU after each epoch.")] = None,
    epochs: Annotated[int, typer.Option()] = 10,
    batch_size: Annotated[int, typer.Option()] = 8,
    lr: Annotated[float, typer.Option(help="Initial learning rate of SGD, decayed by the poly schedule.")] = 0.02,
    depth: Annotated[int, typer.Option(help="ResNet depth: 18, 34, 50 or 101.")] = 18,
    width: Annotated[float, typer.Option(help="ResNet width multiplier.")] = 0.5,
    head_channels: Annotated[int, typer.Option(help="ASPP and decoder channels.")] = 64,
    classes: Annotated[int, typer.Option()] = 6,
    crop: Annotated[str, typer.Option(help="Random training crop HEIGHTxWIDTH, or none.")] = "192x256",
    flip: Annotated[bool, typer.Option(help="Random horizontal flips.")] = True,
    seed: Annotated[int, typer.Option()] = 0,
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N.")] = "cpu",
    workers: Annotated[int, typer.Option(help="DataLoader workers.")] = 0,
    precision: Annotated[str, typer.Option(help="fp32, or bf16 (autocast).")] = "fp32",
    channels_last: Annotated[bool, typer.Option(help="Channels-last models and batches (faster on GPUs).")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing checkpoint.")] = False,
) -> None:
    """Train the DeepLabV3+ image teacher on labelled images."""
    from evtools.models.deeplab import DeepLabConfig
    from evtools.train.teacher import TeacherTraining, train_teacher

    model = DeepLabConfig(depth=depth, width=width, in_channels=1, num_classes=classes,
                          aspp_channels=head_channels, decoder_channels=head_channels)
    config = TeacherTraining(model=model, epochs=epochs, batch_size=batch_size, lr=lr, crop=size_pair("--crop", crop),
                             flip=flip, seed=seed, device=device, workers=workers, precision=precision,
                             channels_last=channels_last)
    sources = [str(p) for p in train]
    with train_progress() as bar:
        task = bar.add_task("teacher", total=None, loss=float("nan"), rate=0.0, terms="")
        result = train_teacher(sources if len(sources) > 1 else sources[0], output, config,
                               ([str(p) for p in val] if len(val) > 1 else str(val[0])) if val else None,
                               _shown(bar, task), overwrite)
    for entry in result.validation:
        stdout.print(f"epoch {entry['epoch']}: validation mIoU {entry['miou']:.3f}, pixel accuracy {entry['pixel_accuracy']:.3f}")
    stdout.print(f"wrote {result.checkpoint} after {result.epochs} epochs in {result.seconds:.0f} s (last loss {result.final_loss:.3f})")


@app.command()
def student(
    events: Annotated[list[str], typer.Option("--events", help="Event caches (repeatable; folders or URLs): the target modality.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The run folder.")],
    method: Annotated[str | None, typer.Option(help="evdistill, supervised or kd-aps (default: the config's).")] = None,
    images: Annotated[Path | None, typer.Option(help="Labelled images (PNG pairs): EvDistill's source modality.")] = None,
    teacher: Annotated[Path | None, typer.Option(help="The image teacher checkpoint (kd-aps, evdistill).")] = None,
    config: Annotated[Path | None, typer.Option(help="A TOML configuration (pipelines/configs/).")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a configuration entry: section.key=value.")] = None,
    epochs: Annotated[int | None, typer.Option()] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda or cuda:N.")] = None,
    precision: Annotated[str | None, typer.Option(help="fp32, or bf16 (autocast).")] = None,
    no_bmr: Annotated[bool, typer.Option("--no-bmr", help="EvDistill without the modality reconstruction.")] = False,
    no_affinity: Annotated[bool, typer.Option("--no-affinity", help="EvDistill without affinity-graph KD.")] = False,
    no_distribution: Annotated[bool, typer.Option("--no-distribution", help="EvDistill without distribution KD.")] = False,
    resume: Annotated[bool, typer.Option(help="Continue the stopped run in the run folder.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Start the run folder's run again, its files replaced.")] = False,
) -> None:
    """Train an event student: evdistill, supervised (on pseudo-labels) or kd-aps."""
    from evtools.train.config import load_config
    from evtools.train.student import StudentInputs, train_student

    overrides = list(set_ or [])
    if resume:
        config = output / "config.toml"
    for flag, key in ((no_bmr, "parts.bmr"), (no_affinity, "parts.affinity"), (no_distribution, "parts.distribution")):
        if flag:
            overrides.append(f"{key}=false")
    for value, key in ((epochs, "training.epochs"), (seed, "training.seed")):
        if value is not None:
            overrides.append(f"{key}={value}")
    for value, key in ((device, "training.device"), (precision, "training.precision")):
        if value is not None:
            overrides.append(f'{key}="{value}"')
    if method is not None:
        overrides.append(f'method="{method}"')
    resolved = load_config(config, overrides)
    inputs = StudentInputs(events=[location(e) for e in events], images=images, teacher=teacher)
    with train_progress() as bar:
        task = bar.add_task(resolved.method, total=None, loss=float("nan"), rate=0.0)
        metrics = train_student(resolved, inputs, output, resume, _shown(bar, task), overwrite)
    if not metrics:  # resumed after its last epoch
        stdout.print(f"{resolved.method}: the run in {output} has trained its {resolved.training.epochs} epochs "
                     "already; --epochs N continues it to N")
        return
    summary = ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items())
    stdout.print(f"{resolved.method}: {summary}; run in {output}")
