"""One huge pair on a Dask cluster: row-range tasks, counts summed exactly, one verdict.

Tasks carry paths, options and row ranges, never open file handles: every task opens its files
on the worker that runs it. Counts come back as exact Python integers and are summed on the
client, so a distributed detect gives exactly the counts of a local one; the verdict is decided
once, at the end, by :func:`dragon_gpu.pipeline.finish`, as for a local detect.
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass, replace
from typing import Sequence

from ..model import Counts, RowProgress, RowRange
from ..pipeline import (DetectOptions, DetectResult, count_range, finish, open_pair,
                        resolve_thresholds)
from .cluster import (DistributedError, check_scheduler, connect, dask_distributed,
                      worker_threads)

__all__ = ["PairPlan", "count_task", "detect", "plan_pair", "split_rows"]

#: Row-range tasks per worker thread in a distributed detect: enough to even out slow workers.
TASKS_PER_THREAD = 4


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
    with open_pair(body_path, dye_path, options) as opened:
        body, blocks = opened.body, opened.blocks
        body_enc, dye_enc = opened.body_enc, opened.dye_enc
        return PairPlan(shape=tuple(body.shape), blocks=tuple(blocks),
                        body_rule=body_enc.rule.text, dye_rule=dye_enc.rule.text)


@functools.lru_cache(maxsize=None)
def _backend(device: str, require_gpu: bool) -> str:
    from ..engines import select_engine

    return select_engine(device, require_gpu=require_gpu, warn=lambda line: None).name


def count_task(body_path: str, dye_path: str, rows: RowRange,
               options: DetectOptions) -> tuple[Counts, str]:
    """Counts of one row range (:func:`dragon_gpu.pipeline.count_range`) and the worker's engine."""
    return (count_range(body_path, dye_path, rows, options),
            _backend(options.device, options.require_gpu))


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
           workers: int | None = None, progress: RowProgress | None = None,
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
    scheduler = check_scheduler(scheduler)
    dask_distributed()  # Dask missing: one line before anything is read
    opts = DetectOptions.derive(options, **kwargs)
    # A threshold method is computed once, here, on the whole image (its histogram pass); the
    # tasks then share the integer it chose.
    opts, chosen = resolve_thresholds(body_path, dye_path, opts)
    # Workers may run in another folder: tasks get absolute paths, the result the paths as given.
    body = os.path.abspath(os.fspath(body_path))
    dye = os.path.abspath(os.fspath(dye_path))
    start = time.perf_counter()
    with connect(scheduler, workers, opts.device, opts.require_gpu) as (client, device):
        opts = replace(opts, device=device)
        plan = client.submit(plan_pair, body, dye, opts, pure=False).result()
        parts = TASKS_PER_THREAD * worker_threads(client)
        ranges = split_rows(plan.blocks, parts) if plan.blocks else []
        total, backends = _count_ranges(client, body, dye, ranges, opts, plan.shape[0], progress)
    return finish(body_path, dye_path, total, plan.shape, opts.cutoff,
                  backend="+".join(sorted(backends)) or "none",
                  seconds=time.perf_counter() - start,
                  rules=(chosen.body_rule or plan.body_rule, chosen.dye_rule or plan.dye_rule),
                  chosen=chosen,
                  # The CPU engine always decodes on the CPU; what GPU workers inflated is not
                  # reported.
                  decode={"body": "cpu", "dye": "cpu"} if backends == {"cpu"} else None)


def _count_ranges(client, body: str, dye: str, ranges: Sequence[RowRange], opts: DetectOptions,
                  height: int, progress) -> tuple[Counts, set[str]]:
    """Submit one :func:`count_task` per row range and sum the counts as they come back."""
    from distributed import KilledWorker, as_completed

    futures = {client.submit(count_task, body, dye, rows, opts, pure=False): rows
               for rows in ranges}
    total, backends, done = Counts(), set(), 0
    try:
        for future in as_completed(futures, loop=client.loop):
            rows = futures[future]
            try:
                counts, backend = future.result()  # a worker's DragonError is raised as it was
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
    return total, backends
