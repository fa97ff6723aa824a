"""What the commands print: file names with square brackets ("rec [a].h5", "[/x]") as they are in
errors, warnings, tables and progress bars, which rich would otherwise read as markup (dropping
"[a]" as a style, failing on "[/x]" as a closing tag); the progress bars of convert and
pseudolabel over many inputs."""

import io
from pathlib import Path

from cli import run_cli
from conftest import make_events
from rich.console import Console

from evtools.cli import console
from evtools.cli.console import MAX_BARS
from evtools.cli.convert import _shown
from evtools.progress import ProgressUpdate
from evtools.io.writers.evh5 import write_evh5


def test_errors_name_a_bracketed_path_as_it_is(tmp_path):
    missing = tmp_path / "rec [red]x[/red] [a].h5"
    for command in (["info", missing], ["convert", missing, "-o", tmp_path / "out"]):
        result = run_cli(*command)
        assert (result.returncode, result.stderr) == (2, f"error: {missing}: no such file or directory\n")


def test_tables_and_warnings_show_bracketed_paths_as_they_are(tmp_path):
    events = make_events(300, 16, 12, span_us=100_000)
    events.x[:3] = 40  # off the 16x12 sensor: a warning naming the cache
    folder = tmp_path / "run [a]"
    folder.mkdir()
    recording = write_evh5(folder / "rec [/x].h5", [events], width=16, height=12)
    wide = {"COLUMNS": "400"}  # no table cell wrapped
    result = run_cli("convert", recording, "-o", folder / "rec [/x]", "--every", "10ms", env=wide)
    assert result.returncode == 0, result.stderr
    cache = folder / "rec [/x].zarr"
    assert f"warning: {cache}: 3 events outside the sensor were dropped" in result.stderr
    assert f" {cache} " in result.stdout  # the conversion table's cache cell
    result = run_cli("info", cache, env=wide)
    assert result.returncode == 0 and result.stdout.startswith(f"{cache} ")  # the table's title


def test_a_progress_bar_shows_a_bracketed_name_as_it_is(monkeypatch):
    shown = io.StringIO()
    monkeypatch.setattr(console, "stderr", Console(file=shown, force_terminal=True, width=100, markup=False))
    with console.progress() as bar:
        bar.add_task("rec [/x] [a].h5", total=10, completed=5)
        bar.refresh()
    assert "rec [/x] [a].h5" in shown.getvalue()


def _bars(bar) -> dict[str, tuple[float, float | None]]:
    return {task.description: (task.completed, task.total) for task in bar.tasks}


def test_convert_shows_a_bar_an_input_or_for_many_only_the_converting_ones(monkeypatch):
    shown = io.StringIO()
    monkeypatch.setattr(console, "stderr", Console(file=shown, force_terminal=True, width=120, markup=False))
    few = [Path(f"r{i}.h5") for i in range(MAX_BARS)]
    with console.inputs_progress() as bar, _shown(bar, few) as show:
        show(ProgressUpdate(16, 32, task=1, figures={"events": 1000}))
        assert _bars(bar) == {f"r{i}.h5": ((16, 32) if i == 1 else (0, None)) for i in range(MAX_BARS)}
    many = [Path(f"r{i}.h5") for i in range(1000)]
    with console.inputs_progress() as bar, _shown(bar, many) as show:
        assert _bars(bar) == {"recordings": (0, 1000)}
        show(ProgressUpdate(16, 32, task=7, figures={"events": 1000}))
        show(ProgressUpdate(5, 10, task=9, figures={"events": 1000}))
        assert _bars(bar) == {"recordings": (0, 1000), "r7.h5": (16, 32), "r9.h5": (5, 10)}
        show(ProgressUpdate(32, 32, task=7, figures={"events": 2000}))
        show(ProgressUpdate(32, 32, task=7, figures={"events": 2000}))  # said twice, counted once
        assert _bars(bar) == {"recordings": (1, 1000), "r9.h5": (5, 10)}
        show(ProgressUpdate(6, 10, task=9, figures={"events": 1000}))  # its bar's id is no longer its place
        assert _bars(bar) == {"recordings": (1, 1000), "r9.h5": (6, 10)}
        bar.refresh()
    assert _bars(bar) == {"recordings": (1000, 1000), "r9.h5": (6, 10)}  # the run is over: all handled
    lines = [line for line in shown.getvalue().splitlines() if "1/1000" in line or "6/10" in line]
    assert lines and all(("windows" in line) == ("r9.h5" in line) for line in lines)  # recordings are no windows
