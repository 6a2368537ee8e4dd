"""Decide many pairs: a manifest in, one results row per pair out, resumable.

The manifest is a CSV file with a header naming at least ``body`` and ``dye`` (paths relative to
the manifest's folder) and optionally ``id``. The results file (``RESULTS.csv``) is an append-only
log: one row per pair, ``id, status, error`` and then the keys of the detect JSON, written and
flushed to disk (``fsync``) as each pair finishes. Running the same batch again skips the pairs
already ``ok`` in it, so a killed batch resumes without losing or repeating work.

Each pair runs in a worker process (:class:`concurrent.futures.ProcessPoolExecutor` started with
``forkserver``, or ``spawn`` where that is missing), so a crash inside a C library costs one
``error`` row, not the batch. :mod:`dragon_gpu.distributed` runs the same per-pair task on a Dask
cluster instead.

This module is named ``batching`` rather than ``batch`` because a submodule ``dragon_gpu.batch``
would replace the function :func:`dragon_gpu.batch` as an attribute of the package once imported.
"""

from __future__ import annotations

import csv
import io
import json
import multiprocessing
import os
import signal
import sys
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from .errors import DragonError, UsageError
from .gpu_batch import WorkerPlan, init_worker, lost_line, plan_workers, run_pair_on_gpu
from .io._decode import usable_cores
from .io._output import non_regular_kind
from .pipeline import DetectOptions, DetectResult

__all__ = ["BatchReport", "ManifestError", "Pair", "ResultsFileError", "RESULT_COLUMNS",
           "DETECT_KEYS", "batch", "read_manifest", "read_results", "run_batch"]

#: Keys of the detect JSON (:meth:`DetectResult.to_dict`), in its order.
DETECT_KEYS = ("version", "body_path", "dye_path", "shape", "body_pixels", "dye_in_body_pixels",
               "dye_outside_body_pixels", "dye_pixels", "fraction", "cutoff", "cancer", "backend",
               "seconds", "pixels_per_second", "body_rule", "dye_rule", "warnings",
               "body_threshold", "dye_threshold", "body_threshold_method", "dye_threshold_method")
#: Columns of RESULTS.csv.
RESULT_COLUMNS = ("id", "status", "error") + DETECT_KEYS
#: Values kept as text in RESULTS.csv; every other value is written as JSON text (numbers,
#: true/false, lists) and an absent value (null) as an empty cell.
_TEXT_KEYS = frozenset({"id", "status", "error", "version", "body_path", "dye_path", "cutoff",
                        "backend", "body_rule", "dye_rule", "body_threshold_method",
                        "dye_threshold_method"})

STATUS_OK = "ok"
STATUS_ERROR = "error"
CRASH_MESSAGE = ("the worker process died while counting this pair (a crash inside a native "
                 "library, or killed by the system, e.g. out of memory)")


class ManifestError(DragonError, ValueError):
    """The manifest cannot be used: unreadable, no header, no body/dye column, duplicate ids..."""


class ResultsFileError(DragonError, ValueError):
    """The results file exists but is not a results file of ``dragon-gpu batch``, or is in use."""


@dataclass(frozen=True)
class Pair:
    """One row of a manifest: an id and the two paths, resolved against the manifest's folder."""

    id: str
    body: str
    dye: str


@dataclass
class BatchReport:
    """What a batch did.

    ``records`` has one plain dict per pair of the manifest, in manifest order, with the keys of
    :data:`RESULT_COLUMNS` (counts as ints, ``cancer`` as bool, ``shape`` and ``warnings`` as
    lists, missing values as ``None``), whether the pair ran now or was already ``ok``.
    """

    records: list[dict]
    ran: int
    skipped: int
    seconds: float
    out: str | None = None
    crashed: list[str] = field(default_factory=list)
    #: the workers chosen for a GPU batch ("4 workers on GPUs 0,1, 2 per GPU"), else empty.
    gpu_workers: str = ""

    @property
    def ok(self) -> int:
        return sum(r["status"] == STATUS_OK for r in self.records)

    @property
    def errors(self) -> int:
        return sum(r["status"] == STATUS_ERROR for r in self.records)

    @property
    def cancer(self) -> int:
        return sum(bool(r["status"] == STATUS_OK and r["cancer"]) for r in self.records)

    @property
    def pairs_per_second(self) -> float | None:
        return self.ran / self.seconds if self.seconds > 0 and self.ran else None

    def summary(self) -> dict:
        """The numbers of the batch summary (``dragon-gpu batch --json``)."""
        return {"pairs": len(self.records), "ok": self.ok, "errors": self.errors,
                "cancer": self.cancer, "ran": self.ran, "skipped": self.skipped,
                "seconds": round(self.seconds, 6), "pairs_per_second": self.pairs_per_second,
                "out": self.out, "gpu_workers": self.gpu_workers or None}


# ---------------------------------------------------------------------------------------------
# Manifest


def read_manifest(path) -> list[Pair]:
    """The pairs of a manifest CSV file.

    Parameters
    ----------
    path : str or PathLike
        A CSV file (UTF-8, optional BOM) whose header names at least ``body`` and ``dye``, and
        optionally ``id``; other columns are ignored. Column names are matched case-insensitively.

    Returns
    -------
    list of Pair
        Paths joined to the manifest's folder (absolute paths stay as they are) and made
        absolute. An empty ``id`` cell (or no ``id`` column) becomes the body path as written in
        the manifest, which stays stable when the manifest's folder moves.

    Raises
    ------
    ManifestError
        If the file cannot be read, has no header with ``body`` and ``dye``, has a row without a
        body or dye path, or names an id twice.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ManifestError("no such manifest file" if not os.path.exists(path)
                            else "is not a regular file", path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            text = fh.read()
    except UnicodeDecodeError:
        raise ManifestError("is not a UTF-8 text file (expected a CSV manifest)", path) from None
    except OSError as exc:
        raise ManifestError(f"cannot be read ({exc.strerror or exc})", path) from None
    try:
        reader = iter(_csv_rows(text, path))
        header = next(reader, (0, None))[1]
        if header is None:
            raise ManifestError("is empty; expected a header with at least body,dye", path)
        names = [h.strip().lower() for h in header]
        missing = [c for c in ("body", "dye") if c not in names]
        if missing:
            raise ManifestError(f"the header has no {' or '.join(missing)} column (found "
                                f"{','.join(header) or 'nothing'}); expected at least body,dye",
                                path)
        for name in ("id", "body", "dye"):
            if names.count(name) > 1:
                raise ManifestError(f"the header names the column {name!r} twice", path)
        col = {name: names.index(name) for name in ("id", "body", "dye") if name in names}
        base = os.path.dirname(os.path.abspath(path))
        rows = []
        for line, cells in reader:
            if not any(c.strip() for c in cells):
                continue  # a blank line
            get = (lambda name: cells[col[name]].strip()
                   if name in col and col[name] < len(cells) else "")
            rows.append((line, get("id"), get("body"), get("dye")))
    except csv.Error as exc:
        raise ManifestError(f"is not valid CSV ({exc})", path) from None
    return _make_pairs(rows, base, path)


def _csv_rows(text: str, path: str) -> list[tuple[int, list[str]]]:
    """(line, cells) of each CSV record of ``text``, ``line`` being where the record ends.

    A quote that is never closed swallows the rest of the file into one cell: it is refused,
    naming the line where it opens. Other irregular quoting is read as the csv module reads it.
    """
    rows: list[tuple[int, list[str]]] = []
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        for cells in reader:
            rows.append((reader.line_num, cells))
        return rows
    except csv.Error as exc:
        if "unexpected end of data" in str(exc):
            start = rows[-1][0] + 1 if rows else 1
            raise ManifestError(f"line {start}: a quote opened on this line is never closed",
                                path) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    return [(reader.line_num, cells) for cells in reader]


def as_pairs(manifest_or_pairs) -> list[Pair]:
    """Pairs from a manifest path, or from an iterable of :class:`Pair`, mappings with ``body``,
    ``dye`` (and optionally ``id``) keys, or ``(body, dye)`` tuples.

    Relative paths of an iterable are relative to the current folder; ids default to the body
    path as given.
    """
    if isinstance(manifest_or_pairs, (str, os.PathLike)):
        return read_manifest(manifest_or_pairs)
    rows = []
    for i, item in enumerate(manifest_or_pairs):
        if isinstance(item, Pair):
            rows.append((i + 1, item.id, item.body, item.dye))
        elif isinstance(item, Mapping):
            if "body" not in item or "dye" not in item:
                raise ManifestError(f"pair {i + 1}: a mapping needs 'body' and 'dye' keys, got "
                                    f"{sorted(map(str, item))}")
            rows.append((i + 1, str(item.get("id") or ""), os.fspath(item["body"]),
                         os.fspath(item["dye"])))
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            rows.append((i + 1, "", os.fspath(item[0]), os.fspath(item[1])))
        else:
            raise ManifestError(f"pair {i + 1}: expected a (body, dye) tuple, a mapping with "
                                f"body and dye keys, or a Pair; got {type(item).__name__}")
    return _make_pairs(rows, os.getcwd(), None, what="pair")


def _make_pairs(rows, base: str, path: str | None, what: str = "line") -> list[Pair]:
    pairs: list[Pair] = []
    seen: dict[str, int] = {}
    for line, id_, body, dye in rows:
        for name, value in (("body", body), ("dye", dye)):
            if not value:
                raise ManifestError(f"{what} {line}: the {name} path is empty", path)
        id_ = id_ or body
        for name, value in (("id", id_), ("body", body), ("dye", dye)):
            if "\n" in value or "\r" in value:
                raise ManifestError(f"{what} {line}: the {name} contains a line break", path)
            if "\0" in value:
                raise ManifestError(f"{what} {line}: the {name} contains a NUL byte", path)
        if id_ in seen:
            hint = "" if id_ != body else " (the id defaults to the body path; add an id column)"
            raise ManifestError(f"{what} {line}: the id {id_!r} is already used on {what} "
                                f"{seen[id_]}{hint}", path)
        seen[id_] = line
        pairs.append(Pair(id_, _locate(base, body), _locate(base, dye)))
    return pairs


def _locate(base: str, name: str) -> str:
    """A manifest entry as a path relative to the manifest's folder; URLs stay as they are."""
    from .io import is_url

    return name if is_url(name) else os.path.abspath(os.path.join(base, name))


# ---------------------------------------------------------------------------------------------
# Records and the results file


def ok_record(pair_id: str, result: dict) -> dict:
    """The results row of a pair that was decided (``result`` is the detect JSON object)."""
    return {"id": pair_id, "status": STATUS_OK, "error": None,
            **{k: result.get(k) for k in DETECT_KEYS}}


def error_record(pair: Pair, message: str) -> dict:
    """The results row of a pair that could not be decided."""
    record = {"id": pair.id, "status": STATUS_ERROR, "error": _one_line(message),
              **dict.fromkeys(DETECT_KEYS)}
    record["body_path"] = pair.body
    record["dye_path"] = pair.dye
    return record


def _one_line(text: str) -> str:
    """Messages become one physical line, so a results row is always one line of the file."""
    return " ".join(str(text).split())


def _cell(key: str, value) -> str:
    if value is None:
        return ""
    if key in _TEXT_KEYS:
        return _one_line(value) if key == "error" else str(value)
    return json.dumps(value)


def _value(key: str, cell: str):
    if cell == "":
        return None
    if key in _TEXT_KEYS:
        return cell
    return json.loads(cell)


def format_row(record: dict) -> str:
    """One line of RESULTS.csv (with its newline) for a record."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([_cell(k, record.get(k)) for k in RESULT_COLUMNS])
    return buf.getvalue()


def _header_line() -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(RESULT_COLUMNS)
    return buf.getvalue()


def _parse_results(path: str, data: bytes) -> tuple[list[dict], int, bool]:
    """Records of a results file's bytes; also the number of bytes of whole lines and whether some
    line was dropped (a malformed row)."""
    end = data.rfind(b"\n") + 1  # a kill can leave a last line without its newline: ignore it
    try:
        text = data[:end].decode("utf-8")
    except UnicodeDecodeError:
        raise ResultsFileError("is not a results file of dragon-gpu batch (not UTF-8 text)",
                               path) from None
    lines = text.splitlines()
    if not lines:
        return [], end, False
    header = next(csv.reader([lines[0]]), [])
    if tuple(header) != RESULT_COLUMNS:
        raise ResultsFileError(
            f"is not a results file of this version of dragon-gpu batch (its header is "
            f"{','.join(header)[:120]!r}); write to a new file", path)
    records, dropped = [], False
    for line in lines[1:]:
        try:
            cells = next(csv.reader([line]), [])
            if len(cells) != len(RESULT_COLUMNS) or cells[1] not in (STATUS_OK, STATUS_ERROR):
                raise ValueError
            records.append({k: _value(k, c) for k, c in zip(RESULT_COLUMNS, cells)})
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
        return _parse_results(path, fh.read())[0]


class ResultsLog:
    """RESULTS.csv, opened for appending one fsynced row at a time.

    Opening it reads the rows already there, repairs a last line cut by a kill, and drops the
    ``error`` rows of pairs that will run again (``retry_errors``) and repeated rows, so the
    file keeps one row per pair; that rewrite goes through a temporary file and a rename. An
    advisory lock (``flock``) refuses a second batch writing the same file at the same time.
    """

    def __init__(self, path, pairs: Sequence[Pair], retry_errors: bool = True):
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
        try:
            self.done = self._load(pairs, retry_errors)
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

    def _load(self, pairs: Sequence[Pair], retry_errors: bool) -> dict[str, dict]:
        os.lseek(self._fd, 0, os.SEEK_SET)
        chunks = []
        while chunk := os.read(self._fd, 1 << 20):
            chunks.append(chunk)
        data = b"".join(chunks)
        records, end, dropped = _parse_results(self.path, data)
        wanted = {p.id for p in pairs}
        done: dict[str, dict] = {}
        for rec in records:  # a pair of the manifest keeps its first ok row, else its last error
            rid = rec["id"]
            if rid in wanted and (done.get(rid) or {}).get("status") != STATUS_OK:
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
        return done

    def _rewrite(self, records: list[dict]) -> None:
        tmp = f"{self.path}.tmp-{os.getpid()}"
        try:
            with open(tmp, "w", encoding="utf-8", newline="") as fh:
                fh.write(_header_line())
                for rec in records:
                    fh.write(format_row(rec))
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

    def append(self, record: dict) -> None:
        """Write one row and force it to disk."""
        try:
            self._append(format_row(record))
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


# ---------------------------------------------------------------------------------------------
# The per-pair task (runs in a worker process or on a Dask worker)

Task = Callable[..., DetectResult]


def run_pair(pair: Pair, options: DetectOptions, task: Task | None = None) -> dict:
    """Decide one pair and return its results record; never raises for a bad pair.

    ``task(body, dye, options)`` defaults to :func:`dragon_gpu.pipeline.detect`. A
    :class:`DragonError` (bad input) and any other exception (a bug) become an ``error`` record,
    so one pair never ends the batch.
    """
    if task is None:
        from .pipeline import detect as task
    try:
        result = task(pair.body, pair.dye, options)
        return ok_record(pair.id, result.to_dict())
    except DragonError as exc:
        return error_record(pair, str(exc))
    except Exception as exc:  # a bug, reported in the row rather than ending the batch
        return error_record(pair, f"internal error: {type(exc).__name__}: {exc}")


def _init_worker(decode_threads: int) -> None:
    # Ctrl-C reaches the whole process group; the parent alone handles it (and stops the
    # workers), so a pair is never recorded as failed because the user pressed Ctrl-C.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.setdefault("DRAGON_GPU_DECODE_THREADS", str(decode_threads))


def _mp_context():
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


Emit = Callable[[dict], None]


def run_local(todo: Sequence[Pair], options: DetectOptions, emit: Emit, workers: int | None = None,
              task: Task | None = None) -> list[str]:
    """Run pairs in a pool of worker processes, calling ``emit(record)`` as each finishes.

    When a worker dies (a segfault in a native library, the OOM killer), the pool breaks and
    every pair in flight fails with :class:`BrokenProcessPool`. Those pairs run again one at a
    time in a fresh one-process pool: the one that breaks it again gets an ``error`` row, the
    others their normal rows. Returns the ids of the pairs that crashed a worker.
    """
    if workers is not None and workers < 1:
        raise UsageError(f"--workers: must be at least 1, got {workers}")
    plan = plan_workers(options.device, workers, usable_cores())
    workers = plan.workers
    decode_threads = max(1, usable_cores() // workers)
    queue: deque[Pair] = deque(todo)
    crashed: list[str] = []
    while queue:
        suspects = _run_pool(queue, options, emit, workers, task, decode_threads, plan)
        for pair in suspects:
            if _run_pool(deque([pair]), options, emit, 1, task, decode_threads, plan):
                crashed.append(pair.id)
                emit(error_record(pair, CRASH_MESSAGE))
    return crashed


def _run_pool(queue: deque, options: DetectOptions, emit: Emit, workers: int, task,
              decode_threads: int, plan: WorkerPlan | None = None) -> list[Pair]:
    """Run the queue until it is empty, the pool breaks or a worker's GPU died (see
    :mod:`.gpu_batch`); returns the pairs in flight when it broke."""
    context = _mp_context()
    gpu = plan is not None and plan.devices is not None
    slots = None
    if gpu:
        slots = context.Queue()
        for device in plan.devices[:workers]:
            slots.put(device)
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=init_worker,
                               initargs=(_init_worker, (decode_threads,), slots))
    run = run_pair_on_gpu if gpu else run_pair
    in_flight: dict = {}
    suspects: list[Pair] = []
    broken = clean = lost = False
    try:
        while queue or in_flight:
            # A short window keeps pairs in the queue (not in the pool) so a break loses little.
            while not (broken or lost) and queue and len(in_flight) < 2 * workers:
                try:
                    future = pool.submit(run, queue[0], options, task)
                except BrokenProcessPool:  # it broke since the last wait
                    broken = True
                    break
                in_flight[future] = queue.popleft()
            if not in_flight:
                break  # broken with nothing in flight (a worker died idle): start a new pool
            finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in [f for f in in_flight if f in finished]:  # in submission order
                pair = in_flight.pop(future)
                try:
                    record = future.result()
                except BrokenProcessPool:  # every pair in flight fails with it, as it drains
                    suspects.append(pair)
                    broken = True
                    continue
                if gpu:
                    record, died = record
                    if died and not lost:
                        print(lost_line(record), file=sys.stderr)
                    lost = lost or died
                    if record is None:  # handed to a worker whose GPU had died: run it again
                        queue.appendleft(pair)
                        continue
                emit(record)
            if (broken or lost) and not in_flight:
                break
        clean = True
        return suspects
    finally:
        if clean:
            pool.shutdown(wait=True)
        else:  # Ctrl-C or an error in emit(): stop the workers now, not after their pairs
            _terminate(pool)


def _terminate(pool: ProcessPoolExecutor) -> None:
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        if proc.is_alive():
            proc.terminate()
    for proc in processes:
        proc.join(timeout=5)


# ---------------------------------------------------------------------------------------------
# The driver

Progress = Callable[[dict, int, int], None]


def run_batch(manifest_or_pairs, out=None, options: DetectOptions | None = None, *,
              scheduler: str | None = None, workers: int | None = None, retry_errors: bool = True,
              progress: Progress | None = None, task: Task | None = None,
              **kwargs) -> BatchReport:
    """Decide every pair of a manifest; the engine of ``dragon-gpu batch``.

    Parameters
    ----------
    manifest_or_pairs : str, PathLike or iterable
        A manifest CSV file, or pairs as accepted by :func:`as_pairs`.
    out : str or PathLike, optional
        RESULTS.csv: rows are appended (and fsynced) as pairs finish, and the pairs already
        ``ok`` in it are skipped. Without it nothing is written and every pair runs.
    options : DetectOptions, optional
        Detection options for every pair; keyword arguments override its fields.
    scheduler : str, optional
        ``None`` runs pairs in local worker processes; ``"local"`` starts a Dask LocalCluster;
        another value is the address of a Dask scheduler to join.
    workers : int, optional
        Worker processes (local pool or LocalCluster); default: the usable cores.
    retry_errors : bool
        Run again the pairs that have an ``error`` row in ``out`` (their old row is dropped).
    progress : callable, optional
        ``progress(record, done, total)`` after each pair that runs, and once with
        ``record=None, done=0`` before the first.
    task : callable, optional
        ``task(body, dye, options) -> DetectResult`` run for each pair in the workers (default
        :func:`dragon_gpu.pipeline.detect`); it must be a module-level function so that worker
        processes can import it.

    Returns
    -------
    BatchReport
        One record per pair, in manifest order, plus counts of what ran.

    Raises
    ------
    ManifestError, ResultsFileError, UsageError
        For a bad manifest, a results file that is not ours, or bad options. A bad *pair* never
        raises: it is an ``error`` row.
    """
    from .pipeline import _options

    try:
        opts = _options(options, kwargs)
    except TypeError as exc:  # an unknown keyword
        raise UsageError(f"unknown detection option ({exc})") from None
    from .engines import parse_device

    # Options that are wrong for every pair fail the batch rather than fill it with error rows.
    if parse_device(opts.device) == "cpu" and opts.require_gpu:
        raise UsageError("--require-gpu contradicts --device cpu")
    pairs = as_pairs(manifest_or_pairs)
    if workers is not None and workers < 1:
        raise UsageError(f"--workers: must be at least 1, got {workers}")
    log = ResultsLog(out, pairs, retry_errors) if out is not None else None
    try:
        done = dict(log.done) if log is not None else {}
        todo = [p for p in pairs if p.id not in done]
        start = time.perf_counter()
        count = 0

        def emit(record: dict) -> None:
            nonlocal count
            if log is not None:
                log.append(record)
            done[record["id"]] = record
            count += 1
            if progress is not None:
                progress(record, count, len(todo))

        if progress is not None and todo:
            progress(None, 0, len(todo))
        gpu_workers = ""
        if not todo:
            crashed: list[str] = []
        elif scheduler is None:
            gpu_workers = plan_workers(opts.device, workers, usable_cores()).note
            crashed = run_local(todo, opts, emit, workers=workers, task=task)
        else:
            from .distributed import run_pairs

            crashed = run_pairs(todo, opts, emit, scheduler=scheduler, workers=workers, task=task)
        seconds = time.perf_counter() - start
    finally:
        if log is not None:
            log.close()
    return BatchReport(records=[done[p.id] for p in pairs], ran=count,
                       skipped=len(pairs) - len(todo), seconds=seconds,
                       out=None if log is None else log.path, crashed=crashed,
                       gpu_workers=gpu_workers)


def batch(manifest_or_pairs, out=None, *, scheduler: str | None = None, workers: int | None = None,
          as_frame: bool = False, options: DetectOptions | None = None, retry_errors: bool = True,
          progress: Progress | None = None, **kwargs):
    """Decide many pairs from a notebook or a pipeline: :func:`run_batch` returning its records.

    Parameters
    ----------
    manifest_or_pairs : str, PathLike or iterable
        A manifest CSV file (``body,dye[,id]``, paths relative to it), or an iterable of
        ``(body, dye)`` tuples or mappings with ``body``, ``dye`` and optionally ``id`` keys.
    out : str or PathLike, optional
        A RESULTS.csv to append to and resume from, as ``dragon-gpu batch --out``.
    scheduler, workers, options, retry_errors, progress
        As in :func:`run_batch`; keyword arguments (``cutoff="0.2"``, ``device="cpu"``...) set
        detection options.
    as_frame : bool
        Return a :class:`pandas.DataFrame` (one row per pair, the columns of RESULTS.csv)
        instead of a list of dicts; needs pandas.

    Returns
    -------
    list of dict or pandas.DataFrame
        One record per pair, in input order: ``id``, ``status`` (``"ok"`` or ``"error"``),
        ``error``, then the detect JSON keys.

    Examples
    --------
    >>> import dragon_gpu
    >>> rows = dragon_gpu.batch([("a/body.tif", "a/dye.tif"), ("b/body.h5", "b/dye.h5")])
    >>> [r["cancer"] for r in rows if r["status"] == "ok"]  # doctest: +SKIP
    """
    if as_frame:
        try:
            import pandas
        except ImportError:
            raise UsageError("as_frame=True needs pandas (pip install pandas)") from None
    report = run_batch(manifest_or_pairs, out, options, scheduler=scheduler, workers=workers,
                       retry_errors=retry_errors, progress=progress, **kwargs)
    if as_frame:
        return pandas.DataFrame.from_records(report.records, columns=list(RESULT_COLUMNS))
    return report.records
