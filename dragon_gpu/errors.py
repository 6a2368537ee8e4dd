"""Exceptions raised by the library.

Every problem with a user's input is a :class:`DragonError`; the CLI turns those (and only those)
into exit code 2 with one line on stderr. Each subclass also inherits the matching builtin, so
callers can catch ``ValueError`` or ``OSError`` as they would with any other library.
"""

from __future__ import annotations


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message``, for errors that must fit one stderr line."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


class DragonError(Exception):
    """Base class of every error caused by the input or the request, not by a bug.

    Parameters
    ----------
    problem : str
        What is wrong, as one sentence without the path.
    path : str, optional
        The file the problem is about; it leads the message when given.
    """

    def __init__(self, problem: str, path: str | None = None):
        self.problem = problem
        self.path = None if path is None else str(path)
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


class UsageError(DragonError, ValueError):
    """An option has a value that cannot be used (bad cutoff, device, memory budget...)."""


class InputError(DragonError, ValueError):
    """An input file cannot be used as a body or dye image."""


class MissingInputError(InputError, FileNotFoundError):
    """An input file does not exist or is not a regular file."""


class UnsupportedInputError(InputError):
    """The file is readable but holds something this tool does not count (RGB, float, 3-D...)."""


class CorruptInputError(InputError):
    """The file is damaged: truncated, inconsistent or undecodable."""


class UnsafeInputError(InputError):
    """The file asks to read other files (HDF5 external links, external storage, virtual datasets)."""


class ShapeMismatchError(InputError):
    """The body and dye images do not have the same shape."""


class EmptyBodyError(InputError):
    """The body mask has no pixel, so no fraction can be computed."""

    def __init__(self, problem: str, path: str | None = None, counts=None):
        super().__init__(problem, path)
        self.counts = counts


class MemoryBudgetError(DragonError, MemoryError):
    """The work cannot be done within the memory budget (``--memory``)."""


class GpuUnavailableError(DragonError, RuntimeError):
    """A GPU was demanded (``--require-gpu``) but none is usable.

    ``absent`` is true when there is evidently no GPU to use (no CuPy, no driver, no device),
    false for a GPU that is there but does not work.
    """

    def __init__(self, problem: str, path: str | None = None, absent: bool = False):
        super().__init__(problem, path)
        self.absent = absent


class GpuError(DragonError, RuntimeError):
    """A usable GPU failed while counting (a CUDA error other than running out of memory)."""


class OutputError(UsageError, OSError):
    """An output cannot be written: its target is not a regular file, is an input, or the disk
    (or ``ulimit -f``) ran out while writing it. Nothing is left under its final name."""
