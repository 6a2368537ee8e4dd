"""RESULTS.csv, the results journal: one fsynced row per pair, appended as pairs finish.

Every complete row is final; reopening the file repairs a row cut by a kill, drops the rows
that will run again, and takes an advisory lock so that one batch at a time writes it.
"""

from __future__ import annotations

import csv
import io
import json
import os
from typing import Mapping, Sequence

from ..errors import DragonError
from ..io._output import non_regular_kind
from .manifest import Pair
from .records import RESULT_COLUMNS, STATUS_ERROR, STATUS_OK, one_line
from .stamps import stale_reason

#: Columns of RESULTS.csv: a record, then what it was computed with (see :func:`.stamps.stamp`).
FILE_COLUMNS = RESULT_COLUMNS + ("computed_with",)
#: Values kept as text in RESULTS.csv; every other value is written as JSON text (numbers,
#: true/false, lists) and an absent value (null) as an empty cell.
_TEXT_KEYS = frozenset({"id", "status", "error", "version", "body_path", "dye_path", "cutoff",
                        "backend", "body_rule", "dye_rule", "body_threshold_method",
                        "dye_threshold_method", "computed_with"})


class ResultsFileError(DragonError, ValueError):
    """The results file exists but is not a results file of ``dragon-gpu batch``, or is in use."""


#: First characters that make a spreadsheet program read a cell as a formula (OWASP, "CSV
#: Injection"): a text cell starting with one of them is written after a single quote.
FORMULA_STARTS = frozenset("=+-@\t\r")


def _defuse(text: str) -> str:
    """``text`` with a ``'`` in front when it would start a formula; reversible by
    :func:`_restore`, since a text starting with quotes and then a formula character gets one
    more quote too."""
    return "'" + text if text.lstrip("'")[:1] in FORMULA_STARTS else text


def _restore(cell: str) -> str:
    return cell[1:] if cell[:1] == "'" and cell.lstrip("'")[:1] in FORMULA_STARTS else cell


def _cell(key: str, value) -> str:
    if value is None:
        return ""
    if key in _TEXT_KEYS:
        return _defuse(one_line(value) if key == "error" else str(value))
    return json.dumps(value)


def _value(key: str, cell: str):
    if cell == "":
        return None
    if key in _TEXT_KEYS:
        return _restore(cell)
    return json.loads(cell)


def format_row(record: dict, computed_with: str | None = None) -> str:
    """One line of RESULTS.csv (with its newline) for a record and its stamp."""
    buf = io.StringIO()
    cells = [_cell(k, record.get(k)) for k in RESULT_COLUMNS] + [_cell("computed_with",
                                                                       computed_with)]
    csv.writer(buf, lineterminator="\n").writerow(cells)
    return buf.getvalue()


def _header_line() -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(FILE_COLUMNS)
    return buf.getvalue()


def _parse_results(path: str, data: bytes) -> tuple[list[dict], int, bool]:
    """Records of a results file's bytes (with their ``computed_with``); also the number of
    bytes of whole lines and whether some line was dropped (a malformed row, an older header)."""
    end = data.rfind(b"\n") + 1  # a kill can leave a last line without its newline: ignore it
    try:
        text = data[:end].decode("utf-8")
    except UnicodeDecodeError:
        raise ResultsFileError("is not a results file of dragon-gpu batch (not UTF-8 text)",
                               path) from None
    # Rows end at "\n" only: str.splitlines would also split at \x1c-\x1e, \x85 or \u2028,
    # which an id or a path may hold. (A row is one line: no cell holds a newline.)
    lines = [line.removesuffix("\r") for line in text.split("\n")[:-1]]
    if not lines:
        return [], end, False
    header = tuple(next(csv.reader([lines[0]]), []))
    # A file of the version before stamps: its rows are read, and recomputed (no stamp matches).
    columns = FILE_COLUMNS if header == FILE_COLUMNS else RESULT_COLUMNS
    if header != columns:
        raise ResultsFileError(
            f"is not a results file of this version of dragon-gpu batch (its header is "
            f"{','.join(header)[:120]!r}); write to a new file", path)
    records, dropped = [], columns != FILE_COLUMNS
    for line in lines[1:]:
        try:
            cells = next(csv.reader([line]), [])
            if len(cells) != len(columns) or cells[1] not in (STATUS_OK, STATUS_ERROR):
                raise ValueError
            record = dict.fromkeys(FILE_COLUMNS)
            record.update((k, _value(k, c)) for k, c in zip(columns, cells))
            records.append(record)
        except (ValueError, csv.Error):
            dropped = True  # a damaged row: the pair runs again
    return records, end, dropped


def read_results(path) -> list[dict]:
    """The records of a RESULTS.csv file (a truncated last line is ignored).

    Raises
    ------
    ResultsFileError
        If the file is not a results file of ``dragon-gpu batch``.
    """
    path = os.fspath(path)
    with open(path, "rb") as fh:
        return [_public(rec) for rec in _parse_results(path, fh.read())[0]]


def _public(record: dict) -> dict:
    return {k: record.get(k) for k in RESULT_COLUMNS}


class ResultsLog:
    """RESULTS.csv, opened for appending one fsynced row at a time.

    Opening it reads the rows already there, repairs a last line cut by a kill, and drops the
    ``error`` rows of pairs that will run again (``retry_errors``), the rows whose stamp is not
    the pair's stamp now (``stamps``: computed with other options or other input files), and
    repeated rows, so the file keeps one row per pair; that rewrite goes through a temporary
    file and a rename. An advisory lock (``flock``) refuses a second batch writing the same file
    at the same time.

    ``done`` maps the ids reused to their records; ``stale`` maps the ids whose rows were
    dropped as stale to the reason (:func:`stale_reason`).
    """

    def __init__(self, path, pairs: Sequence[Pair], retry_errors: bool = True,
                 stamps: Mapping[str, str] | None = None):
        self.path = os.path.abspath(os.fspath(path))
        folder = os.path.dirname(self.path)
        if os.path.isdir(self.path):
            raise ResultsFileError("is a directory; --out needs a file name", self.path)
        kind = non_regular_kind(self.path)
        if kind is not None:  # a pipe or device cannot be fsynced, re-read or resumed from
            raise ResultsFileError(f"is {kind}; --out must be a regular file (a later run "
                                   "resumes from it)", self.path)
        if not os.path.isdir(folder):
            raise ResultsFileError("its folder does not exist", self.path)
        self._fd = self._open_locked(self.path)
        self.stale: dict[str, str] = {}
        try:
            self.done = self._load(pairs, retry_errors, stamps)
        except BaseException:
            os.close(self._fd)
            raise

    @staticmethod
    def _open_locked(path: str) -> int:
        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            except OSError as exc:
                raise ResultsFileError(f"cannot be opened for writing ({exc.strerror or exc})",
                                       path) from None
            try:
                _lock(fd, path)
                if os.fstat(fd).st_ino == os.stat(path).st_ino:
                    return fd
            except FileNotFoundError:
                pass
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)  # another batch replaced the file while we waited: open the new one

    def _load(self, pairs: Sequence[Pair], retry_errors: bool,
              stamps: Mapping[str, str] | None) -> dict[str, dict]:
        os.lseek(self._fd, 0, os.SEEK_SET)
        chunks = []
        while chunk := os.read(self._fd, 1 << 20):
            chunks.append(chunk)
        data = b"".join(chunks)
        records, end, dropped = _parse_results(self.path, data)
        wanted = {p.id for p in pairs}
        done: dict[str, dict] = {}
        stale: dict[str, str] = {}
        for rec in records:  # a pair of the manifest keeps its first ok row, else its last error
            rid = rec["id"]
            if rid not in wanted:
                continue
            if stamps is not None and rec["computed_with"] != stamps[rid]:
                stale[rid] = stale_reason(rec["computed_with"], stamps[rid])
                continue
            if (done.get(rid) or {}).get("status") != STATUS_OK:
                if rec["status"] == STATUS_OK or not retry_errors:
                    done[rid] = rec
        kept, seen = [], set()
        for rec in records:
            rid = rec["id"]
            if rid in seen or (rid in wanted and done.get(rid) is not rec):
                continue  # a repeated row, or an error row of a pair that runs again
            seen.add(rid)
            kept.append(rec)
        if not data:
            self._append(_header_line())
        elif dropped or end != len(data) or len(kept) != len(records):
            self._rewrite(kept)
        self.stale = {rid: why for rid, why in stale.items() if rid not in done}
        return {rid: _public(rec) for rid, rec in done.items()}

    def _rewrite(self, records: list[dict]) -> None:
        tmp = f"{self.path}.tmp-{os.getpid()}"
        try:
            with open(tmp, "w", encoding="utf-8", newline="") as fh:
                fh.write(_header_line())
                for rec in records:
                    fh.write(format_row(rec, rec["computed_with"]))
                fh.flush()
                os.fsync(fh.fileno())
            fd = os.open(tmp, os.O_RDWR | os.O_APPEND)
            _lock(fd, self.path)
            os.replace(tmp, self.path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        _fsync_dir(os.path.dirname(self.path))
        os.close(self._fd)
        self._fd = fd

    def _append(self, line: str) -> None:
        data = line.encode("utf-8")
        while data:  # one write() nearly always; loop in case the kernel takes part of it
            data = data[os.write(self._fd, data):]
        os.fsync(self._fd)

    def append(self, record: dict, computed_with: str | None = None) -> None:
        """Write one row and force it to disk."""
        try:
            self._append(format_row(record, computed_with))
        except OSError as exc:  # a full disk, a lost network mount...
            raise ResultsFileError(f"cannot be written ({exc.strerror or exc})",
                                   self.path) from None

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _lock(fd: int, path: str) -> None:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no advisory lock
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise ResultsFileError("is being written by another dragon-gpu batch", path) from None


def _fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows cannot open folders
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)
