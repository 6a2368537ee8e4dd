"""The batch driver: a manifest in, one results row per pair out, resumable.

It reads the manifest (:mod:`.manifest`), opens the results journal (:mod:`.journal`) and
decides which rows it can reuse (:mod:`.stamps`), then hands the other pairs to a runner: the
local pool (:mod:`.local`) or Dask (:mod:`.dask_runner`). Runners call back ``emit(record)`` as
each pair finishes; the driver alone writes rows.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from ..errors import UsageError
from ..io._decode import usable_cores
from ..model import BatchProgress
from ..pipeline import DetectOptions
from .cluster import check_scheduler, reach
from .gpu import plan_workers
from .journal import ResultsLog
from .local import run_local
from .manifest import Pair, as_pairs
from .records import RESULT_COLUMNS, STATUS_ERROR, STATUS_OK, Emit, Task
from .stamps import options_digest, stamp

#: The batch's progress callback under its former name (exported by :mod:`dragon_gpu.batching`).
Progress = BatchProgress


@dataclass
class BatchReport:
    """What a batch did.

    ``records`` has one plain dict per pair of the manifest, in manifest order, with the keys of
    :data:`RESULT_COLUMNS` (counts as ints, ``cancer`` as bool, ``shape`` and ``warnings`` as
    lists, missing values as ``None``), whether the pair ran now or was already ``ok``.
    ``skipped`` counts the rows reused from ``out``; ``recomputed`` the pairs among those that
    ran whose old rows no longer matched their options or input files.
    """

    records: list[dict]
    ran: int
    skipped: int
    seconds: float
    out: str | None = None
    crashed: list[str] = field(default_factory=list)
    #: the workers chosen for a GPU batch ("4 workers on GPUs 0,1, 2 per GPU"), else empty.
    gpu_workers: str = ""
    #: pairs whose rows in ``out`` were computed with other options or input files, run again.
    recomputed: int = 0

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
                "recomputed": self.recomputed,
                "seconds": round(self.seconds, 6), "pairs_per_second": self.pairs_per_second,
                "out": self.out, "gpu_workers": self.gpu_workers or None}


def run_batch(manifest_or_pairs, out=None, options: DetectOptions | None = None, *,
              scheduler: str | None = None, workers: int | None = None, retry_errors: bool = True,
              progress: BatchProgress | None = None, task: Task | None = None,
              **kwargs) -> BatchReport:
    """Decide every pair of a manifest; the engine of ``dragon-gpu batch``.

    Parameters
    ----------
    manifest_or_pairs : str, PathLike or iterable
        A manifest CSV file, or pairs as accepted by :func:`.manifest.as_pairs`.
    out : str or PathLike, optional
        RESULTS.csv: rows are appended (and fsynced) as pairs finish, and the pairs already
        ``ok`` in it are skipped, unless their row was computed with other options (those of
        :data:`.stamps.RESULT_OPTIONS`) or their input files changed since (size or
        modification time): those run again, and a line on stderr says how many. Without it
        nothing is written and every pair runs.
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
    opts = _batch_options(options, kwargs)
    jobs = as_pairs(manifest_or_pairs)
    if workers is not None and workers < 1:
        raise UsageError(f"must be at least 1, got {workers}", param="workers")
    if scheduler is not None:
        scheduler = check_scheduler(scheduler)
        if scheduler != "local":
            reach(scheduler)  # an unreachable scheduler leaves no results file behind
    log, stamps = _open_journal(out, jobs, retry_errors, opts)
    try:
        done = dict(log.done) if log is not None else {}
        stale = dict(log.stale) if log is not None else {}
        todo = [job for job in jobs if job.id not in done]
        start = time.perf_counter()
        count = 0

        def emit(record: dict) -> None:
            nonlocal count
            if log is not None:
                log.append(record, stamps[record["id"]])
            done[record["id"]] = record
            count += 1
            if progress is not None:
                progress(record, count, len(todo))

        if progress is not None and todo:
            progress(None, 0, len(todo))
        crashed, gpu_workers = _run(todo, opts, emit, scheduler, workers, task)
        seconds = time.perf_counter() - start
    finally:
        if log is not None:
            log.close()
    return BatchReport(records=[done[job.id] for job in jobs], ran=count,
                       skipped=len(jobs) - len(todo), seconds=seconds,
                       out=None if log is None else log.path, crashed=crashed,
                       gpu_workers=gpu_workers, recomputed=len(stale))


def _open_journal(out, jobs: Sequence[Pair], retry_errors: bool,
                  opts: DetectOptions) -> tuple[ResultsLog | None, dict[str, str]]:
    """The results journal (None without ``out``) and each pair's stamp; says on stderr how many
    rows of the journal are stale and run again."""
    if out is None:
        return None, {}
    digest = options_digest(opts)
    stamps = {job.id: stamp(job, digest) for job in jobs}
    log = ResultsLog(out, jobs, retry_errors, stamps)
    if log.stale:
        print(resume_line(log.path, len(log.done), log.stale), file=sys.stderr)
    return log, stamps


def _batch_options(options: DetectOptions | None, overrides: dict) -> DetectOptions:
    """The options of every pair; options that are wrong for every pair fail the batch rather
    than fill it with error rows."""
    try:
        opts = DetectOptions.derive(options, **overrides)
    except TypeError as exc:  # an unknown keyword
        raise UsageError(f"unknown detection option ({exc})") from None
    from ..engines import parse_device

    if parse_device(opts.device) == "cpu" and opts.require_gpu:
        raise UsageError("{option:require_gpu} contradicts {option:device} cpu")
    return opts


def _run(todo: Sequence[Pair], opts: DetectOptions, emit: Emit, scheduler: str | None,
         workers: int | None, task: Task | None) -> tuple[list[str], str]:
    """Hand the pairs to a runner; returns the ids that crashed a worker, and the GPU workers
    chosen (for the summary)."""
    if not todo:
        return [], ""
    if scheduler is None:
        note = plan_workers(opts.device, workers, usable_cores()).note
        return run_local(todo, opts, emit, workers=workers, task=task), note
    from .dask_runner import run_pairs  # Dask is optional: imported only when asked for

    return run_pairs(todo, opts, emit, scheduler=scheduler, workers=workers, task=task), ""


def resume_line(path: str, reused: int, stale: Mapping[str, str]) -> str:
    """The stderr line of a resumed batch whose results file holds rows no longer valid."""
    why = {"options": "computed with other options", "inputs": "whose input files changed",
           "unrecorded": "written by an older version"}
    counts = [f"{sum(v == key for v in stale.values())} {text}" for key, text in why.items()
              if key in stale.values()]
    return (f"dragon-gpu: {path}: {reused} row{'s' if reused != 1 else ''} reused, "
            f"{len(stale)} recomputed ({', '.join(counts)})")


def batch(manifest_or_pairs, out=None, *, scheduler: str | None = None, workers: int | None = None,
          as_frame: bool = False, options: DetectOptions | None = None, retry_errors: bool = True,
          progress: BatchProgress | None = None, **kwargs):
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
        Return a :class:`pandas.DataFrame` (one row per pair, the columns of
        :data:`RESULT_COLUMNS`) instead of a list of dicts; needs pandas. Counts and thresholds
        are nullable integers (``Int64``): an error row holds ``<NA>``, the others stay exact.

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
        return _frame(pandas, report.records)
    return report.records


#: Integer columns of a record: nullable integers in a data frame, so that an error row (no
#: counts) does not turn every count into a float (inexact past 2**53).
INTEGER_KEYS = ("body_pixels", "dye_in_body_pixels", "dye_outside_body_pixels", "dye_pixels",
                "body_threshold", "dye_threshold")


def _frame(pandas, records: list[dict]):
    frame = pandas.DataFrame.from_records(records, columns=list(RESULT_COLUMNS))
    for key in INTEGER_KEYS:
        frame[key] = pandas.array([r[key] for r in records], dtype="Int64")
    return frame
