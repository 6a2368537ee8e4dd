"""What every command shares: exit codes, one-line errors and flag names.

This is the only place that knows about exit codes: library errors (:class:`DragonError`) become
exit 2 with one line on stderr, Ctrl-C becomes exit 130 and SIGTERM exit 143, anything else is
a bug (exit 1).
"""

from __future__ import annotations

import functools

import typer

from .._signals import EXIT_TERMINATED, Terminated, terminate_as_interrupt
from ..errors import DragonError, UsageError

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

#: Flags of library parameters that are not ``--`` and the name with dashes, for every command...
_FLAGS = {"dataset": "--body-dataset / --dye-dataset", "fmt": "--format", "as_json": "--json"}
#: ...and for one command.
_COMMAND_FLAGS = {"info": {"dataset": "--dataset"}, "convert": {"dataset": "--dataset"}}


def printable(text: str) -> str:
    """``text`` with control characters escaped (a newline in a path reads ``\\n``), so that a
    message stays one line."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)


def fail(message: str, code: int = EXIT_BAD_INPUT) -> typer.Exit:
    """Print ``dragon-gpu: message`` on stderr; the exit to raise."""
    typer.echo(f"dragon-gpu: {printable(message)}", err=True)
    return typer.Exit(code)


def warn(message: str) -> None:
    typer.echo(f"dragon-gpu: warning: {printable(message)}", err=True)


def flag_of(param: str, command: str | None = None) -> str:
    """The command-line flag of the library parameter ``param`` in ``command``."""
    named = _COMMAND_FLAGS.get(command, {}).get(param) or _FLAGS.get(param)
    return named or "--" + param.replace("_", "-")


def cli_errors(func):
    """Turn library errors into exit 2, Ctrl-C into exit 130 and SIGTERM into exit 143, each with
    one line on stderr (SIGTERM runs the cleanup Ctrl-C runs: see :mod:`dragon_gpu._signals`).
    The library names parameters; the line names them as this command's flags."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            with terminate_as_interrupt():
                return func(*args, **kwargs)
        except DragonError as exc:
            message = exc.format(functools.partial(flag_of, command=func.__name__))
            raise fail(f"error: {message}") from None
        except Terminated:
            raise fail("terminated", EXIT_TERMINATED) from None
        except KeyboardInterrupt:
            raise fail("interrupted", EXIT_INTERRUPTED) from None
        except BrokenPipeError:
            raise typer.Exit(0) from None

    return wrapper


def warn_unused(path: str, page: int, dataset: str | None) -> None:
    """Warn about ``--page`` for an input that is not a TIFF and ``--dataset`` for one that is
    (info and convert read one input; detect's JSON reports its own, see dragon_gpu.ignored)."""
    from ..io import sniff_format, split_selector

    fmt = sniff_format(split_selector(path)[0])
    if page and fmt != "tiff":
        warn(f"--page {page} applies to TIFF files only: {path} is read without it")
    if dataset is not None and fmt == "tiff":
        warn(f"--dataset {dataset} applies to HDF5 and Zarr inputs only: {path} is a TIFF file "
             "and is read without it")


def choice(option: str, value: str, allowed: tuple[str, ...]) -> str:
    """``value`` lower-cased when it is one of ``allowed``; else a one-line usage error."""
    text = str(value).strip().lower()
    if text not in allowed:
        raise UsageError(f"{option}: expected {', '.join(allowed[:-1])} or {allowed[-1]}, got "
                         f"{value!r}")
    return text


def echo_json(obj) -> None:
    import json

    typer.echo(json.dumps(obj))
