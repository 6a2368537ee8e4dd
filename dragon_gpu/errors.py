"""Exceptions raised by the library.

Every problem with a user's input is a :class:`DragonError`; the CLI turns those (and only those)
into exit code 2 with one line on stderr. Each subclass also inherits the matching builtin, so
callers can catch ``ValueError`` or ``OSError`` as they would with any other library.
"""

from __future__ import annotations

import re
from typing import Callable

#: An option named inside a message, as ``{option:allow_external}``: the library spells it as its
#: parameter name, the CLI as its flag (see :meth:`DragonError.format`).
_OPTION = re.compile(r"\{option:([a-z_]+)\}")


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message``, for errors that must fit one stderr line."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


class DragonError(Exception):
    """Base class of every error caused by the input or the request, not by a bug.

    Parameters
    ----------
    problem : str
        What is wrong, as one sentence without the path. It may name another option as
        ``{option:NAME}`` (a parameter name such as ``allow_external``).
    path : str, optional
        The file the problem is about; it leads the message when given.
    param : str, optional
        The parameter whose value is wrong (``cutoff``, ``memory``...): it follows the path, as
        ``cutoff: must be between 0 and 1``. The CLI spells it as its flag (``--cutoff: ...``).

    Instances pickle with their class, message and attributes (a Dask worker can raise them).
    """

    def __init__(self, problem: str, path: str | None = None, *, param: str | None = None):
        self.problem = problem
        self.path = None if path is None else str(path)
        self.param = param
        super().__init__(self.format())

    def format(self, spell: Callable[[str], str] | None = None) -> str:
        """The message, with each parameter spelled by ``spell`` (default: its own name)."""
        spell = spell or str
        problem = _OPTION.sub(lambda m: spell(m.group(1)), self.problem)
        parts = [p for p in (self.path, spell(self.param) if self.param else None) if p]
        return ": ".join(parts + [problem])

    # Pickled as class(problem) plus the attributes: every subclass takes ``problem`` first (a
    # MemoryError subclass cannot be rebuilt through ``__new__`` alone).
    def __reduce__(self):
        return type(self), (self.problem,), self.__dict__.copy()

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.args = (self.format(),)


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

    def __init__(self, problem: str, path: str | None = None, counts=None, **kw):
        super().__init__(problem, path, **kw)
        self.counts = counts


class MemoryBudgetError(DragonError, MemoryError):
    """The work cannot be done within the memory budget (``--memory``)."""


class GpuUnavailableError(DragonError, RuntimeError):
    """A GPU was demanded (``--require-gpu``) but none is usable.

    ``absent`` is true when there is evidently no GPU to use (no CuPy, no driver, no device),
    false for a GPU that is there but does not work.
    """

    def __init__(self, problem: str, path: str | None = None, absent: bool = False, **kw):
        super().__init__(problem, path, **kw)
        self.absent = absent


class GpuError(DragonError, RuntimeError):
    """A usable GPU failed while counting (a CUDA error other than running out of memory)."""


class OutputError(UsageError, OSError):
    """An output cannot be written: its target is not a regular file, is an input, or the disk
    (or ``ulimit -f``) ran out while writing it. Nothing is left under its final name."""
