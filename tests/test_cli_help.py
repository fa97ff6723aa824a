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


def test_placeholders_from_click_types_as_typer_before_0_29_gives_them():
    """typer 0.27 (on the lent GPU machines) has no ``display_type``: the command must still start
    (it raised AttributeError there), options named by their types, a choice left as [a|b]."""
    import click

    from evtools.cli.app import _with_metavars

    command = click.Command("convert", params=[click.Argument(["inputs"], nargs=-1),
                                               click.Option(["--bins"], type=int), click.Option(["--tau"]),
                                               click.Option(["--codec"], type=click.Choice(["zstd", "lz4"]))])
    _with_metavars(command)
    assert [p.metavar for p in command.params] == ["INPUTS", "INTEGER", "TEXT", None]
    shown = command.get_help(click.Context(command))
    assert "--bins INTEGER" in shown and "--tau TEXT" in shown and "--codec [zstd|lz4]" in shown
