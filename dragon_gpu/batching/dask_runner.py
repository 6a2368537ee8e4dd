"""The Dask runner: pairs of a batch as Dask tasks, rows written by the client as they finish."""

from __future__ import annotations

import uuid
from collections import deque
from dataclasses import replace
from typing import Sequence

from ..pipeline import DetectOptions
from .cluster import connect, dask_distributed, worker_threads
from .manifest import Pair
from .records import CRASH_MESSAGE, Emit, Task, error_record, run_pair


def run_pairs(todo: Sequence[Pair], options: DetectOptions, emit: Emit, *, scheduler: str,
              workers: int | None = None, task: Task | None = None) -> list[str]:
    """Run pairs as Dask tasks, calling ``emit(record)`` on the client as each finishes.

    At most two tasks per worker thread are submitted at a time, so a Ctrl-C or a lost cluster
    leaves little work in flight and the rest of the manifest never leaves the client. A pair
    whose task kills its worker is retried by Dask on other workers (``allowed-failures``) and
    then gets an ``error`` row. Returns the ids of those pairs.
    """
    dd = dask_distributed()
    from distributed import KilledWorker

    crashed: list[str] = []
    # run_batch has reached the scheduler already (before it opened the results file).
    with connect(scheduler, workers, options.device, options.require_gpu,
                 reached=True) as (client, device):
        opts = replace(options, device=device)
        pending = deque(todo)
        futures: dict = {}
        queue = dd.as_completed(loop=client.loop)

        def submit() -> None:
            job = pending.popleft()
            future = client.submit(run_pair, job, opts, task, pure=False,
                                   key=f"dragon-pair-{uuid.uuid4().hex}")
            futures[future.key] = (future, job)
            queue.add(future)

        for _ in range(min(len(pending), 2 * worker_threads(client))):
            submit()
        try:
            for future in queue:
                _, job = futures.pop(future.key)
                try:
                    record = future.result()
                except KilledWorker as exc:
                    crashed.append(job.id)
                    record = error_record(job, f"{CRASH_MESSAGE}; Dask gave up ({exc})")
                except Exception as exc:  # a task that could not run (lost, not deserialisable)
                    record = error_record(job, f"the Dask task failed: {type(exc).__name__}: "
                                                f"{exc}")
                future.release()
                emit(record)
                if pending:
                    submit()
        finally:
            if futures:
                client.cancel([f for f, _ in futures.values()])
    return crashed
