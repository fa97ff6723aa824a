"""Every command's help names its values the way typer always has (TEXT, PATH, INTEGER, INPUTS...),
not as <int>, <list[Path]> or {path}."""

import re

import pytest
from cli import run_cli

COMMANDS = [["info"], ["convert"], ["render"], ["simulate"], ["pseudolabel"], ["score"], ["eval"],
            ["train", "teacher"], ["train", "student"]]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_placeholders_read_like_typers(command):
    result = run_cli(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert not re.search(r"<[a-zA-Z\[\]]+>|\{[A-Z_.]+\}", result.stdout), result.stdout
    assert re.search(r"\b(TEXT|PATH|INTEGER|FLOAT)\b", result.stdout)


def test_options_of_typer_before_0_29_keep_their_own_placeholders():
    """typer 0.27 (on the GPU machines) shows TEXT, INTEGER itself and its options have no
    ``display_type``: the command must still start (it raised AttributeError there)."""
    import click

    from evtools.cli.app import _with_metavars

    command = click.Command("convert", params=[click.Argument(["inputs"], nargs=-1), click.Option(["--bins"], type=int)])
    _with_metavars(command)
    inputs, bins = command.params
    assert (inputs.metavar, bins.metavar) == ("INPUTS", None)
    assert "--bins INTEGER" in command.get_help(click.Context(command))
