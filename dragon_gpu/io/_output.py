"""The one way dragon-gpu writes an output file: checked, temporary, then renamed.

Every writer (``convert``, ``generate``, ``preview -o``, ``detect --preview``) goes through
:class:`AtomicOutput`:

1. :func:`check_target` refuses, before any work, a target that exists and is not a regular file
   (a directory, FIFO, socket or device, also behind a symlink) or that is one of the inputs
   (compared by device and inode, so a hard link or another spelling of the name is caught).
   A symlink to a regular file is written through: the file it points to is replaced, the link
   is kept.
2. The data goes to a hidden temporary file in the target's folder,
   ``.NAME.HOST-PID-XXXXXXXX.part``, created with ``O_EXCL``; temporaries of that pattern left by
   a process of this host that no longer runs (a ``kill -9``, a power cut) are removed when the
   same output is written again.
3. :meth:`AtomicOutput.commit` flushes the file to disk, checks the target again and renames the
   temporary over it; any exception (``KeyboardInterrupt`` and SIGTERM included) removes the
   temporary instead. A full disk (``ENOSPC``), a file size limit (``EFBIG``, ``ulimit -f``) or
   any other failed write becomes an :class:`~dragon_gpu.errors.OutputError` (exit 2).

:func:`publish` renames several outputs as one: all of them, or none.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import socket
import stat
from typing import Iterable, Sequence

from ..errors import DragonError, OutputError

__all__ = ["AtomicOutput", "check_target", "clean_stale", "non_regular_kind", "publish",
           "translate_write_error"]

TEMP_SUFFIX = ".part"
#: Filesystem kinds in words, for the refusal of a target that is not a regular file.
_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))
#: errno -> why a write failed, in words (the errno name follows, for searching).
_REASONS = {errno.ENOSPC: "no space left on the device",
            errno.EFBIG: "the file size limit was reached",
            errno.EDQUOT: "the disk quota is exceeded",
            errno.EROFS: "the filesystem is read-only",
            errno.EACCES: "permission denied",
            errno.EIO: "an input/output error"}
#: HDF5 reports system errors inside the text of a RuntimeError or OSError.
_HDF5_ERRNO = re.compile(r"errno = (\d+)")


def _host_tag() -> str:
    """This host's name, reduced to characters safe in a file name (temporaries on a shared
    folder are only ever cleaned by the host that made them)."""
    name = re.sub(r"[^A-Za-z0-9_-]", "", socket.gethostname().split(".")[0])[:32]
    return name or "host"


def _kind(mode: int) -> str | None:
    for test, words in _KINDS:
        if test(mode):
            return words
    return None if stat.S_ISREG(mode) else "not a regular file"


def non_regular_kind(path) -> str | None:
    """What ``path`` is, in words, when it exists and is not a regular file (symlinks followed);
    None for a regular file or a missing path."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return None
    return _kind(mode)


def check_target(path, inputs: Iterable = (), *, hint: str = "give a file name") -> str:
    """The file to write for the output ``path``, or an :class:`OutputError` saying why not.

    Parameters
    ----------
    path : str or PathLike
        The output the user named.
    inputs : iterable of str or PathLike
        Files the same command reads; the output may not be any of them.
    hint : str
        What to do instead when ``path`` is a directory (e.g. "give a .png file name").

    Returns
    -------
    str
        The absolute path that will be replaced: ``path`` itself, or the file a symlink at
        ``path`` points to (so the link survives the rename).
    """
    shown = os.fspath(path)
    final = os.path.realpath(shown)
    try:
        st = os.stat(final)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise OutputError(f"cannot be checked ({exc.strerror or exc})", shown) from None
    if st is not None:
        kind = _kind(st.st_mode)
        if kind == "a directory":
            raise OutputError(f"is a directory; {hint}", shown)
        if kind is not None:
            raise OutputError(f"exists and is {kind}; only a regular file is ever replaced, "
                              "give another name", shown)
        for item in inputs:
            try:
                other = os.stat(item)
            except OSError:
                continue  # a missing input is reported by its reader
            if (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino):
                raise OutputError(f"the output is the input file {os.fspath(item)}; write to "
                                  "another name", shown)
    folder = os.path.dirname(final)
    if not os.path.isdir(folder):
        raise OutputError("its folder does not exist", shown)
    return final


def _temp_pattern(final: str) -> re.Pattern:
    name = re.escape(os.path.basename(final))
    return re.compile(rf"^\.{name}\.{re.escape(_host_tag())}-(\d+)-[0-9a-f]{{8}}"
                      rf"{re.escape(TEMP_SUFFIX)}$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def clean_stale(final: str) -> list[str]:
    """Remove the temporaries of ``final`` left by dead processes of this host; their paths.

    Only names of this module's pattern for this very output are considered, and only when the
    process id in the name no longer runs, so a concurrent writer's temporary is never touched.
    """
    folder, pattern = os.path.dirname(final), _temp_pattern(final)
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        match = pattern.match(name)
        if match is None or int(match.group(1)) == os.getpid() or _alive(int(match.group(1))):
            continue
        tmp = os.path.join(folder, name)
        try:
            if stat.S_ISREG(os.lstat(tmp).st_mode):
                os.unlink(tmp)
                removed.append(tmp)
        except OSError:
            pass
    return removed


def translate_write_error(exc: BaseException, where: str) -> DragonError | None:
    """The :class:`OutputError` for a failed write of ``where``, or None if ``exc`` is not one.

    OSError (``ENOSPC``, ``EFBIG``...) and the RuntimeError h5py raises with the system error in
    its text are write failures; a :class:`DragonError` or a KeyboardInterrupt is not.
    """
    if isinstance(exc, DragonError) or not isinstance(exc, (OSError, RuntimeError)):
        return None
    code = exc.errno if isinstance(exc, OSError) else None
    if code is None:
        match = _HDF5_ERRNO.search(str(exc))
        code = int(match.group(1)) if match else None
        if code is None and not isinstance(exc, OSError):
            return None  # a RuntimeError without a system error is a bug, not a full disk
    if code in _REASONS:
        reason = f"{_REASONS[code]} ({errno.errorcode[code]})"
        if code == errno.EFBIG:
            reason = reason[:-1] + ", see ulimit -f)"
    elif code is not None:
        reason = f"{os.strerror(code)} ({errno.errorcode.get(code, code)})"
    else:
        reason = " ".join(str(exc).split())[:200]
    return OutputError(f"cannot be written: {reason}; nothing was left under its name", where)


def _fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - a folder that cannot be opened: nothing to sync
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some filesystems refuse fsync on folders
        pass
    finally:
        os.close(fd)


class AtomicOutput:
    """A temporary file next to an output, renamed over it by :meth:`commit`.

    Use as a context manager: leaving the block normally commits, leaving it with an exception
    (``KeyboardInterrupt`` and SIGTERM included) removes the temporary file and leaves the
    output untouched; a failed write is re-raised as an :class:`OutputError`. Several outputs
    are committed together with :func:`publish`.

    Parameters
    ----------
    path : str or PathLike
        The output (see :func:`check_target` for what is refused).
    inputs : iterable of str or PathLike
        Files the command reads: the output may not be one of them.
    where : str, optional
        The name errors show (default ``path``).
    hint : str
        Passed to :func:`check_target`.

    Attributes
    ----------
    path : str
        The output as given.
    final : str
        The file the rename replaces (symlinks resolved).
    tmp : str
        The temporary file to write.
    """

    def __init__(self, path, inputs: Iterable = (), *, where: str | None = None,
                 hint: str = "give a file name"):
        self.path = os.fspath(path)
        self.where = self.path if where is None else where
        self.final = check_target(self.path, inputs, hint=hint)
        clean_stale(self.final)
        folder, name = os.path.split(self.final)
        prefix = f".{name}.{_host_tag()}-{os.getpid()}-"
        for _ in range(100):
            tmp = os.path.join(folder, f"{prefix}{secrets.token_hex(4)}{TEMP_SUFFIX}")
            try:
                # O_EXCL: no clash with a concurrent writer; 0o666: the umask decides the mode.
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                continue
            except OSError as exc:
                raise OutputError(f"cannot create a file in {folder} ({exc.strerror})",
                                  self.where) from None
            os.close(fd)
            self.tmp = tmp
            break
        else:  # pragma: no cover - 100 random clashes
            raise OutputError(f"cannot create a temporary file in {folder}", self.where)
        self.done = False

    def sync(self) -> None:
        """Force the temporary file's data to disk (a full disk may only show here)."""
        fd = os.open(self.tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _recheck(self) -> None:
        """The target may have changed since the check: still only a regular file is replaced."""
        try:
            mode = os.lstat(self.final).st_mode
        except FileNotFoundError:
            return
        kind = _kind(mode) if not stat.S_ISLNK(mode) else None
        if kind is not None:
            raise OutputError(f"became {kind} while it was written; it was left alone",
                              self.where)

    def rename(self) -> None:
        """Rename the temporary over the output (after :meth:`sync`)."""
        self._recheck()
        os.replace(self.tmp, self.final)
        self.done = True

    def commit(self) -> None:
        """Sync, rename and sync the folder: the output is complete and durable."""
        if self.done:
            return
        try:
            self.sync()
            self.rename()
        except BaseException as exc:
            self.discard()
            error = translate_write_error(exc, self.where)
            if error is not None:
                raise error from None
            raise
        _fsync_dir(os.path.dirname(self.final))

    def discard(self) -> None:
        """Remove the temporary file (the output is left as it was)."""
        if not self.done:
            try:
                os.unlink(self.tmp)
            except FileNotFoundError:
                pass
            self.done = True

    def __enter__(self) -> "AtomicOutput":
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.commit()
            return False
        self.discard()
        error = translate_write_error(exc, self.where)
        if error is not None:
            raise error from None
        return False


def publish(outputs: Sequence[AtomicOutput]) -> None:
    """Commit ``outputs`` as one: every output is renamed into place, or none stays.

    The last output is the marker that the others are complete (``truth.json`` of a generated
    pair): an existing file under its name is removed first, so that an old marker never
    describes a half-replaced set. On any failure, what this call renamed is removed and the
    remaining temporaries are discarded.
    """
    published: list[AtomicOutput] = []
    try:
        for out in outputs:
            out.sync()
        marker = outputs[-1].final
        if os.path.lexists(marker):
            outputs[-1]._recheck()
            os.unlink(marker)
        for out in outputs:
            out.rename()
            published.append(out)
    except BaseException as exc:
        for out in published:
            try:
                os.unlink(out.final)
            except OSError:
                pass
        for out in outputs:
            out.discard()
        error = translate_write_error(exc, outputs[0].where)
        if error is not None:
            raise error from None
        raise
    for folder in {os.path.dirname(out.final) for out in outputs}:
        _fsync_dir(folder)
