"""The local runner: pairs in a pool of worker processes on this machine.

Each pair runs in a worker process (:class:`concurrent.futures.ProcessPoolExecutor` started with
``forkserver``, or ``spawn`` where that is missing), so a crash inside a C library costs one
``error`` row, not the batch. With the CUDA engine the workers are bound to GPUs (:mod:`.gpu`).
"""

from __future__ import annotations

import multiprocessing
import os
import select
import signal
import sys
import threading
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Sequence

from ..errors import UsageError
from ..io._decode import usable_cores
from ..pipeline import DetectOptions
from .gpu import WorkerPlan, init_worker, lost_line, plan_workers, run_pair_on_gpu
from .manifest import Pair
from .records import CRASH_MESSAGE, Emit, Task, error_record, run_pair


def _init_worker(decode_threads: int, batch_pid: int) -> None:
    # Ctrl-C (and a SIGTERM sent to the process group, as by `timeout` or a service manager)
    # reaches every worker; the parent alone handles it and stops the workers, so a pair is never
    # recorded as failed because the batch was stopped.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.environ.setdefault("DRAGON_GPU_DECODE_THREADS", str(decode_threads))
    exit_with(batch_pid)


#: Seconds between two looks of a worker at the batch process, where no pidfd can wait for it.
PARENT_POLL = 0.2


def exit_with(batch_pid: int) -> None:
    """End this worker process as soon as the batch process ``batch_pid`` is gone.

    A SIGKILL of the batch runs none of its cleanup, and its workers are children of the
    forkserver, which itself lives as long as any of them: they would live on, holding the
    caller's pipes open. A daemon thread waits for the batch to end (a pidfd on Linux, else a
    poll) and exits the worker at once; the forkserver and the resource tracker then see their
    last user gone and exit too.
    """
    try:
        fd = os.pidfd_open(batch_pid)
    except (AttributeError, OSError):  # not Linux 5.3+: poll
        fd = None
    if fd is None and not _running(batch_pid):
        os._exit(1)

    def watch() -> None:
        if fd is not None:
            select.select([fd], [], [])  # readable once the process has exited
        else:
            while _running(batch_pid):
                time.sleep(PARENT_POLL)
        os._exit(1)

    threading.Thread(target=watch, name="dragon-gpu-batch-watch", daemon=True).start()


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - it exists, as another user's process
        return True
    return True


def _mp_context():
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def run_local(todo: Sequence[Pair], options: DetectOptions, emit: Emit, workers: int | None = None,
              task: Task | None = None) -> list[str]:
    """Run pairs in a pool of worker processes, calling ``emit(record)`` as each finishes.

    When a worker dies (a segfault in a native library, the OOM killer), the pool breaks and
    every pair in flight fails with :class:`BrokenProcessPool`. Those pairs run again one at a
    time in a fresh one-process pool: the one that breaks it again gets an ``error`` row, the
    others their normal rows. Returns the ids of the pairs that crashed a worker.
    """
    if workers is not None and workers < 1:
        raise UsageError(f"must be at least 1, got {workers}", param="workers")
    plan = plan_workers(options.device, workers, usable_cores())
    workers = plan.workers
    decode_threads = max(1, usable_cores() // workers)
    queue: deque[Pair] = deque(todo)
    crashed: list[str] = []
    while queue:
        suspects = _run_pool(queue, options, emit, workers, task, decode_threads, plan)
        for job in suspects:
            if _run_pool(deque([job]), options, emit, 1, task, decode_threads, plan):
                crashed.append(job.id)
                emit(error_record(job, CRASH_MESSAGE))
    return crashed


def _run_pool(queue: deque, options: DetectOptions, emit: Emit, workers: int, task,
              decode_threads: int, plan: WorkerPlan | None = None) -> list[Pair]:
    """Run the queue until it is empty, the pool breaks or a worker's GPU died (see
    :mod:`.gpu`); returns the pairs in flight when it broke."""
    context = _mp_context()
    gpu = plan is not None and plan.devices is not None
    slots = None
    if gpu:
        slots = context.Queue()
        for device in plan.devices[:workers]:
            slots.put(device)
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=init_worker,
                               initargs=(_init_worker, (decode_threads, os.getpid()), slots))
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
                job = in_flight.pop(future)
                try:
                    record = future.result()
                except BrokenProcessPool:  # every pair in flight fails with it, as it drains
                    suspects.append(job)
                    broken = True
                    continue
                if gpu:
                    record, died = record
                    if died and not lost:
                        print(lost_line(record), file=sys.stderr)
                    lost = lost or died
                    if record is None:  # handed to a worker whose GPU had died: run it again
                        queue.appendleft(job)
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
            proc.kill()  # workers ignore SIGTERM (see _init_worker); they hold nothing to clean
    for proc in processes:
        proc.join(timeout=5)
