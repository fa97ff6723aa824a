"""The ``evtools`` typer app: global options, command registration, and the error boundary."""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path
from typing import Annotated

import typer

from evtools import __version__
from evtools.cli import convert, evaluate, info, pseudolabel, render, simulate, train
from evtools.cli.console import error, stdout
from evtools.errors import EvtoolsError, first_line

app = typer.Typer(
    help="Event-camera recordings to cached tensors, pseudo-labels and EvDistill students.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.command()(info.info)
app.command()(convert.convert)
app.command()(render.render)
app.command()(simulate.simulate)
app.add_typer(train.app, name="train")
app.command()(pseudolabel.pseudolabel)
app.command()(pseudolabel.score)
app.command(name="eval")(evaluate.evaluate)

_show_tracebacks = False
# click's UsageError (bad or missing options and arguments), reached through typer's public
# BadParameter whether typer ships click or depends on it
UsageError = typer.BadParameter.__mro__[1]


def _print_version(value: bool) -> None:
    if value:
        stdout.print(f"evtools {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of an error.")] = False,
) -> None:
    global _show_tracebacks
    _show_tracebacks = debug


INTERRUPTED = ("interrupted (convert and pseudolabel resume where they stopped when the same command runs again, "
               "train student with --resume)")
INTERRUPTED_CODE = 130  # 128 + SIGINT, as shells report it


def _fail(message: str, code: int) -> None:
    error(message)
    # a read that failed inside zarr's event loop leaves its other reads running: they finish
    # before the process exits, or their teardown ("Event loop is closed", "Task was destroyed
    # but it is pending!", "coroutine ... was never awaited") would follow the one line
    if "zarr" in sys.modules:
        from evtools.cache import settle_zarr_io

        try:
            settle_zarr_io()
        except KeyboardInterrupt:  # a second Ctrl-C does not wait
            pass
    # what outlasts the wait is torn down quietly
    logging.getLogger("asyncio").disabled = True
    warnings.filterwarnings("ignore", message="coroutine .* was never awaited", category=RuntimeWarning)
    sys.exit(code)


# typer's classic placeholders, where typer 0.29 writes <int>, <list[Path]> or {inputs}
_METAVARS = {"int": "INTEGER", "float": "FLOAT", "str": "TEXT", "Path": "PATH", "bool": "BOOLEAN"}


def _with_metavars(command):
    """The app's command, every parameter without a metavar given one like typer's classic ones
    (TEXT, PATH, INTEGER; NAME... for a repeated argument)."""
    for sub in getattr(command, "commands", {}).values():
        _with_metavars(sub)
    for param in command.params:
        if param.metavar is not None or getattr(param, "is_flag", False):
            continue
        if param.param_type_name == "argument":
            # "INPUTS..." in the usage line and the Arguments list, without braces or a type
            param.metavar = param.name.upper()
            repeated = "..." if param.nargs == -1 else ""
            shown = lambda *args, name=param.metavar + repeated, **kwargs: name  # noqa: E731
            # typer 0.29 asks the first two, typer 0.27 the last (and wraps a metavar in braces)
            param._usage_display_name = param._rich_display_name = param.make_metavar = shown
            param.display_type_rich = lambda ctx: None
            continue
        if hasattr(param, "display_type"):  # typer 0.29: "<int>", "<list[Path]>", "<str>"
            bare = (param.display_type(None) or "").strip("<>").removeprefix("list[").removesuffix("]")
        elif hasattr(param.type, "choices"):  # a choice keeps its [a|b|c]
            continue
        else:  # earlier typer: its click types' names ("int", "str", "path"; "integer", "text")
            bare = param.type.name
        param.metavar = _METAVARS.get(bare, bare.upper())
    return command


# the packages whose errors are a remote store's (its fsspec driver, the client libraries under it)
STORE_PACKAGES = frozenset({"fsspec", "s3fs", "gcsfs", "adlfs", "upath", "botocore", "aiobotocore", "boto3",
                            "google", "azure", "aiohttp", "requests", "urllib3"})


def _store_failure(err: BaseException) -> str | None:
    """'URL: the store failed (...)' for an error that a remote store raised (no credentials, a
    refused connection, an unknown host) in a command that opened caches at URLs; their drivers'
    errors name no URL. None for any other error."""
    cache = sys.modules.get("evtools.cache")
    urls = cache.remote_locations() if cache is not None else ()
    from_store = type(err).__module__.split(".")[0] in STORE_PACKAGES or (isinstance(err, OSError) and not err.filename)
    if not urls or not from_store:
        return None
    return f"{', '.join(urls)}: the store failed ({type(err).__name__}: {first_line(err)})"


def _os_error_line(err: OSError) -> str:
    """An operating-system error as 'PATH: problem'; a folder asked for where a file lies (``-o
    notes.txt/run``, ``simulate notes.txt``) says so instead of the bare 'File exists'."""
    if isinstance(err, FileExistsError) and err.filename and Path(err.filename).is_file():
        return f"{err.filename}: is a file, where a folder is needed"
    where = f"{err.filename}: " if err.filename else ""
    return f"{where}{err.strerror or first_line(err)}"


def main() -> None:
    """Console-script entry: an EvtoolsError, an operating-system error (a full disk, a
    read-only or vanished folder) or a usage error (an unknown option, a value of the wrong
    type) becomes one line on stderr and exit code 2; Ctrl-C one line and exit code 130. A
    conversion stopped either way resumes when the same command runs again."""
    try:
        command = _with_metavars(typer.main.get_command(app))
        code = command(standalone_mode=False, prog_name="evtools")  # click's errors come here instead of being printed
    except UsageError as err:
        if type(err).__name__ == "NoArgsIsHelpError":  # a bare group: its help, as click shows it
            err.show()
            sys.exit(err.exit_code)
        command = err.ctx.command_path if err.ctx else "evtools"
        _fail(f"{err.format_message()} (see {command} --help)", 2)
    except typer.Abort:  # click's form of a KeyboardInterrupt
        _fail(INTERRUPTED, INTERRUPTED_CODE)
    except EvtoolsError as err:
        if _show_tracebacks:
            raise
        _fail(str(err), 2)
    except OSError as err:
        if _show_tracebacks:
            raise
        _fail(_store_failure(err) or _os_error_line(err), 2)
    except KeyboardInterrupt:
        _fail(INTERRUPTED, INTERRUPTED_CODE)
    except Exception as err:  # noqa: BLE001 - an fsspec store's driver: each raises its own kinds
        if _show_tracebacks or (line := _store_failure(err)) is None:
            raise
        _fail(line, 2)
    if code == INTERRUPTED_CODE:  # typer (0.2x) turns Ctrl-C into this exit code without a word
        _fail(INTERRUPTED, INTERRUPTED_CODE)
    sys.exit(code if isinstance(code, int) else 0)
