"""The Dask driver: many pairs (batch), or the row ranges of one huge pair (detect), on a cluster.

Tasks carry paths, options and row ranges, never open file handles: every task opens its files on
the worker that runs it. Counts come back as exact Python integers and are summed on the client,
so a distributed detect gives exactly the counts of a local one; the verdict is decided once, at
the end, by :func:`dragon_gpu.verdict.decide`.

``scheduler="local"`` starts a :class:`dask.distributed.LocalCluster` of worker processes (one
thread each) listening on the loopback interface only; with dask-cuda installed and a GPU present
it starts a ``LocalCUDACluster`` instead, one worker per GPU, each seeing its own GPU as GPU 0.
Any other value is the address of a running scheduler (``tcp://host:8786``), whose workers must
have dragon-gpu installed and see the files under the same paths as the client.

Dask is optional: importing this module needs nothing, and using it without Dask raises a
:class:`~dragon_gpu.errors.UsageError` that says what to install.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import time
import uuid
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Callable, Iterator, Sequence

from .batching import CRASH_MESSAGE, Emit, Pair, Task, error_record, run_pair, usable_cores
from .errors import DragonError, EmptyBodyError, GpuUnavailableError, UsageError
from .model import Counts, RowRange
from .pipeline import (DetectOptions, DetectResult, _options, count_range, coverage_warnings,
                       open_pair, resolve_thresholds)
from .verdict import decide

__all__ = ["DistributedError", "PairPlan", "connect", "count_task", "detect", "plan_pair",
           "run_pairs", "split_rows"]

#: Row-range tasks per worker thread in a distributed detect: enough to even out slow workers.
TASKS_PER_THREAD = 4
#: Seconds to wait for a scheduler, and for its first worker.
CONNECT_TIMEOUT = 30


class DistributedError(DragonError, RuntimeError):
    """The cluster failed the work: a worker died repeatedly on a task, or a task was lost."""


def _dask():
    try:
        import dask.distributed
    except ImportError as exc:
        raise UsageError("--scheduler needs Dask: pip install 'dragon-gpu[dask]' "
                         f"(dask.distributed cannot be imported: {exc})") from None
    return dask.distributed


def _worker_version() -> str:
    from . import __version__

    return __version__


@contextmanager
def connect(scheduler: str, workers: int | None = None, device: str = "auto",
            require_gpu: bool = False, warn: Callable[[str], None] | None = None,
            timeout: float = CONNECT_TIMEOUT) -> Iterator[tuple[object, str]]:
    """A Dask client for ``scheduler``, and the ``device`` its tasks should use.

    Parameters
    ----------
    scheduler : str
        ``"local"`` to start a cluster on this machine for the duration of the block, or the
        address of a running scheduler.
    workers : int, optional
        Worker processes of a local cluster (default: the usable cores, or every GPU with
        dask-cuda). Refused with an address: a running cluster has its own workers.
    device : str
        The detect ``--device``. With dask-cuda, GPUs named here become the cluster's workers and
        tasks use ``"0"``, each worker's own GPU.
    timeout : float
        Seconds to wait for the scheduler, and then for its first worker.

    Yields
    ------
    (client, device)
    """
    dd = _dask()
    warn = warn or _stderr
    scheduler = str(scheduler).strip()
    if not scheduler:
        raise UsageError("--scheduler: expected 'local' or a scheduler address such as "
                         "tcp://10.0.0.5:8786")
    if workers is not None and workers < 1:
        raise UsageError(f"--workers: must be at least 1, got {workers}")
    cluster = None
    if scheduler == "local":
        cluster, device = _local_cluster(dd, workers, device, require_gpu, warn)
        target = cluster
    elif workers is not None:
        raise UsageError("--workers applies to --scheduler local; a running cluster has its own "
                         "workers")
    else:
        target = scheduler
    try:
        try:
            client = dd.Client(target, timeout=timeout, set_as_default=False)
        except (OSError, ValueError) as exc:
            raise UsageError(f"--scheduler: cannot connect to the Dask scheduler at "
                             f"{scheduler} ({exc})") from None
        try:
            try:
                client.wait_for_workers(1, timeout=timeout)
            except (TimeoutError, OSError):
                raise UsageError(f"--scheduler: no Dask worker joined the scheduler at "
                                 f"{scheduler} within {timeout:g} s") from None
            _check_workers(client, scheduler, warn)
            yield client, device
        finally:
            client.close()
    finally:
        if cluster is not None:
            cluster.close()


def _local_cluster(dd, workers: int | None, device: str, require_gpu: bool, warn):
    from .engines import parse_device

    spec = parse_device(device)
    if spec != "cpu":
        try:
            from dask_cuda import LocalCUDACluster
        except ImportError:
            LocalCUDACluster = None
        if LocalCUDACluster is not None:
            kwargs = dict(n_workers=workers, threads_per_worker=1, host="127.0.0.1",
                          dashboard_address=None, silence_logs=logging.ERROR)
            if isinstance(spec, list):
                kwargs["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, spec))
            try:
                # Each worker sees its own GPU first, so "0" is that worker's GPU.
                return LocalCUDACluster(**kwargs), "0"
            except Exception as exc:  # no GPU, no driver, NVML missing...
                if require_gpu:
                    raise GpuUnavailableError(f"dask-cuda could not start GPU workers ({exc})")
                if spec != "auto":  # as with detect, only a named GPU's fallback is announced
                    warn(f"dragon-gpu: dask-cuda could not start GPU workers ({exc}); "
                         "using CPU workers")
    n = workers or usable_cores()
    env = {}
    if "DRAGON_GPU_DECODE_THREADS" not in os.environ:
        # n single-threaded workers share the cores: one decode pool each would oversubscribe.
        env["DRAGON_GPU_DECODE_THREADS"] = str(max(1, usable_cores() // n))
    cluster = dd.LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                              dashboard_address=None, silence_logs=logging.ERROR, env=env)
    return cluster, device


def _check_workers(client, scheduler: str, warn) -> None:
    from . import __version__

    try:
        versions = client.run(_worker_version)
    except Exception as exc:  # typically ModuleNotFoundError: dragon_gpu is not on the workers
        raise UsageError(f"--scheduler: the Dask workers at {scheduler} cannot run dragon-gpu "
                         f"({type(exc).__name__}: {exc}); install it on every worker") from None
    others = sorted({v for v in versions.values() if v != __version__})
    if others:
        warn(f"dragon-gpu: Dask workers run dragon-gpu {', '.join(others)}, this client "
             f"{__version__}")


def _threads(client) -> int:
    return max(1, sum(client.nthreads().values()))


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# Many pairs


def run_pairs(todo: Sequence[Pair], options: DetectOptions, emit: Emit, *, scheduler: str,
              workers: int | None = None, task: Task | None = None) -> list[str]:
    """Run pairs as Dask tasks, calling ``emit(record)`` on the client as each finishes.

    At most two tasks per worker thread are submitted at a time, so a Ctrl-C or a lost cluster
    leaves little work in flight and the rest of the manifest never leaves the client. A pair
    whose task kills its worker is retried by Dask on other workers (``allowed-failures``) and
    then gets an ``error`` row. Returns the ids of those pairs.
    """
    dd = _dask()
    from distributed import KilledWorker

    crashed: list[str] = []
    with connect(scheduler, workers, options.device, options.require_gpu) as (client, device):
        opts = replace(options, device=device)
        pending = deque(todo)
        futures: dict = {}
        queue = dd.as_completed(loop=client.loop)

        def submit() -> None:
            pair = pending.popleft()
            future = client.submit(run_pair, pair, opts, task, pure=False,
                                   key=f"dragon-pair-{uuid.uuid4().hex}")
            futures[future.key] = (future, pair)
            queue.add(future)

        for _ in range(min(len(pending), 2 * _threads(client))):
            submit()
        try:
            for future in queue:
                _, pair = futures.pop(future.key)
                try:
                    record = future.result()
                except KilledWorker as exc:
                    crashed.append(pair.id)
                    record = error_record(pair, f"{CRASH_MESSAGE}; Dask gave up ({exc})")
                except Exception as exc:  # a task that could not run (lost, not deserialisable)
                    record = error_record(pair, f"the Dask task failed: {type(exc).__name__}: "
                                                f"{exc}")
                future.release()
                emit(record)
                if pending:
                    submit()
        finally:
            if futures:
                client.cancel([f for f, _ in futures.values()])
    return crashed


# ---------------------------------------------------------------------------------------------
# One pair, split into row ranges


@dataclass(frozen=True)
class PairPlan:
    """What a client needs to split a pair into row ranges, found by a worker."""

    shape: tuple[int, int]
    blocks: tuple[RowRange, ...]
    body_rule: str
    dye_rule: str


def plan_pair(body_path: str, dye_path: str, options: DetectOptions) -> PairPlan:
    """Open both inputs (headers only), check them as a local detect does, and plan row blocks.

    Runs on a worker, so the client needs no access to the files. The checks are those of
    :func:`dragon_gpu.pipeline.detect` before it reads a pixel: shapes, pixel rules, and the
    memory budget against the files' strips, tiles and chunks.
    """
    with open_pair(body_path, dye_path, options) as pair:
        body, blocks, body_enc, dye_enc = pair.body, pair.blocks, pair.body_enc, pair.dye_enc
        return PairPlan(shape=tuple(body.shape), blocks=tuple(blocks),
                        body_rule=body_enc.rule.text, dye_rule=dye_enc.rule.text)


@functools.lru_cache(maxsize=None)
def _backend(device: str, require_gpu: bool) -> str:
    from .engines import select_engine

    return select_engine(device, require_gpu=require_gpu, warn=lambda line: None).name


def count_task(body_path: str, dye_path: str, rows: RowRange,
               options: DetectOptions) -> tuple[Counts, str]:
    """Counts of one row range (:func:`dragon_gpu.pipeline.count_range`) and the worker's engine."""
    return (count_range(body_path, dye_path, rows, options),
            _backend(options.device, options.require_gpu))


def _result(future):
    """The task's value; a :class:`DragonError` raised on a worker is raised here as it was
    (they pickle with their class, message and attributes)."""
    return future.result()


def split_rows(blocks: Sequence[RowRange], parts: int) -> list[RowRange]:
    """Group consecutive blocks into at most ``parts`` row ranges of nearly equal block counts.

    Range edges are block edges, so each task reads whole strips, tiles or chunks, as the local
    plan does.
    """
    n = len(blocks)
    parts = max(1, min(parts, n))
    edges = [round(i * n / parts) for i in range(parts + 1)]
    return [RowRange(blocks[edges[i]].row_start, blocks[edges[i + 1] - 1].row_stop)
            for i in range(parts) if edges[i + 1] > edges[i]]


def detect(body_path, dye_path, options: DetectOptions | None = None, *, scheduler: str = "local",
           workers: int | None = None, progress: Callable[[int, int], None] | None = None,
           **kwargs) -> DetectResult:
    """Decide one pair on a Dask cluster: row-range tasks, counts summed exactly, one verdict.

    Parameters
    ----------
    body_path, dye_path : str or PathLike
        The pair, as in :func:`dragon_gpu.pipeline.detect`; made absolute, since workers may run
        in another folder.
    options : DetectOptions, optional
        As in :func:`dragon_gpu.pipeline.detect`; ``memory`` is the budget of each task.
    scheduler, workers
        As in :func:`connect`.
    progress : callable, optional
        ``progress(rows_done, rows_total)`` as row ranges finish.

    Returns
    -------
    DetectResult
        The same result as a local detect, but ``backend`` is the engine the workers used
        (``"cpu"`` or ``"cuda:0"``, as the SPEC allows; the engines joined with ``+`` only on a
        cluster that mixes them) and ``seconds`` is the wall time of the whole run.
    """
    dd = _dask()
    from distributed import KilledWorker

    opts = _options(options, kwargs)
    # A threshold method is computed once, here, on the whole image (its histogram pass); the
    # tasks then share the integer it chose.
    opts, chosen = resolve_thresholds(body_path, dye_path, opts)
    # Workers may run in another folder: tasks get absolute paths, the result the paths as given.
    body = os.path.abspath(os.fspath(body_path))
    dye = os.path.abspath(os.fspath(dye_path))
    start = time.perf_counter()
    with connect(scheduler, workers, opts.device, opts.require_gpu) as (client, device):
        opts = replace(opts, device=device)
        plan = _result(client.submit(plan_pair, body, dye, opts, pure=False))
        height = plan.shape[0]
        ranges = split_rows(plan.blocks, TASKS_PER_THREAD * _threads(client)) if plan.blocks else []
        futures = {client.submit(count_task, body, dye, rows, opts, pure=False): rows
                   for rows in ranges}
        total, backends, done = Counts(), set(), 0
        try:
            for future in dd.as_completed(futures, loop=client.loop):
                rows = futures[future]
                try:
                    counts, backend = _result(future)
                except KilledWorker as exc:
                    raise DistributedError(f"rows [{rows.row_start}, {rows.row_stop}) killed "
                                           f"Dask workers repeatedly ({exc}); a crash in a native "
                                           "library, or out of memory (lower --memory)",
                                           body) from None
                total = total + counts
                backends.add(backend)
                done += rows.rows
                if progress is not None:
                    progress(done, height)
        finally:
            client.cancel(list(futures))
    seconds = time.perf_counter() - start
    if total.body == 0:
        raise EmptyBodyError(f"the body mask is empty under the rule '{plan.body_rule}' "
                             "(check --body-polarity / --threshold)", os.fspath(body_path),
                             counts=total)
    return DetectResult(
        body_path=os.fspath(body_path), dye_path=os.fspath(dye_path), shape=plan.shape,
        verdict=decide(total, opts.cutoff),
        backend="+".join(sorted(backends)) or "none", seconds=seconds,
        body_rule=chosen.body_rule or plan.body_rule, dye_rule=chosen.dye_rule or plan.dye_rule,
        warnings=chosen.warnings + coverage_warnings(total, plan.shape), thresholds=chosen,
        # The CPU engine always decodes on the CPU; what GPU workers inflated is not reported.
        decode={"body": "cpu", "dye": "cpu"} if backends == {"cpu"} else None)
