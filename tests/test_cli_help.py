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
