"""The ``dragon-gpu`` command line (typer).

A command parses its options, makes one library call and renders the result:

* :mod:`.options` declares every option once (typer ``Annotated`` aliases, choices from
  :mod:`dragon_gpu.choices`) and builds :class:`~dragon_gpu.pipeline.DetectOptions` from them;
* :mod:`.common` holds exit codes and the one-line errors (library errors exit 2, Ctrl-C 130,
  SIGTERM 143, anything else is a bug: exit 1); :mod:`.progress` the one progress bar;
* :mod:`.detect` (detect, preview), :mod:`.batch`, :mod:`.info` and :mod:`.generate` (generate,
  convert, demo) are the commands. They import the library inside the command, so that
  ``dragon-gpu --help`` loads neither NumPy nor a reader.
"""

from __future__ import annotations

import sys

import typer

from .. import __version__
from .._signals import EXIT_TERMINATED, Terminated
from . import batch, detect, generate, info
from .common import EXIT_INTERRUPTED
from .options import parse_memory

__all__ = ["app", "main", "parse_memory"]

app = typer.Typer(
    name="dragon-gpu",
    help="Decide, exactly and at gigapixel scale, whether lit dye covers more than a cutoff of a "
         "parasite's body. Images are streamed in row blocks; a GPU is used when one is usable.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool):
    if value:
        from ..engines.native import kernel

        typer.echo(f"dragon-gpu {__version__}")
        typer.echo(f"CPU counting: {kernel()}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and what counts on the CPU "
                                            "(the compiled kernel or NumPy), and exit.")):
    pass


for _command in (detect.detect, batch.batch, info.info, generate.demo, generate.generate,
                 generate.convert, detect.preview):
    app.command()(_command)


def main() -> None:
    """Console-script entry point.

    Runs the app outside click's standalone mode so that a usage error (a bad option value, a
    missing argument) is one line on stderr and exit 2, like every other bad input, instead of a
    framed panel.
    """
    try:
        code = app(prog_name="dragon-gpu", standalone_mode=False)
    except typer.TyperException as exc:  # click's usage errors (typer vendors click)
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `dragon-gpu`: the help is the answer
            typer.echo(exc.format_message(), err=True)
        else:
            hint = f" (see {ctx.command_path} --help)" if ctx is not None else ""
            message = " ".join(exc.format_message().split())
            typer.echo(f"dragon-gpu: error: {message}{hint}", err=True)
        sys.exit(exc.exit_code)
    except Terminated:
        typer.echo("dragon-gpu: terminated", err=True)
        sys.exit(EXIT_TERMINATED)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("dragon-gpu: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(code if isinstance(code, int) else 0)
