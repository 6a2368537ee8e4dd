"""Threads and reads shared by the readers and writers.

Readers fetch a segment's raw bytes with ``os.pread`` (thread safe, no shared file position) and
decode them with the decoders of :mod:`.codecs` (imagecodecs, which releases the GIL): a thread
pool decodes the segments of one block on every core. :func:`ordered_map` is the one bounded
window of work in flight: the writers compress segments with it, the generator renders with it,
and :func:`dragon_gpu.streaming.prefetch` reads blocks ahead with it.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator

import numpy as np

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def decode_workers() -> int:
    """Threads used to decode segments: ``DRAGON_GPU_DECODE_THREADS`` or the usable cores."""
    env = os.environ.get("DRAGON_GPU_DECODE_THREADS")
    if env:
        return max(1, int(env))
    return usable_cores()


def decode_pool() -> ThreadPoolExecutor:
    """The process-wide pool that decodes segments."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(decode_workers(), thread_name_prefix="dragon-decode")
        return _pool


def pread_exact(fd: int, offset: int, nbytes: int, out: np.ndarray | None = None):
    """``nbytes`` bytes at ``offset``, into ``out`` (a uint8 buffer reused by the caller) when
    given; short reads (a truncated file) raise ``EOFError``."""
    if out is None:
        data = os.pread(fd, nbytes, offset)
        got = len(data)
    else:
        data = out[:nbytes]
        got = os.preadv(fd, [memoryview(data)], offset) if nbytes else 0
    if got != nbytes:
        raise EOFError(f"segment at byte {offset} needs {nbytes} bytes, the file has {got}")
    return data


def ordered_map(fn: Callable, items: Iterable, workers: int, window: int | None = None, *,
                background: bool = False, name: str = "dragon-encode") -> Iterator:
    """``fn(item)`` for each item on ``workers`` threads, yielded in the order of ``items``.

    At most ``window`` items (default ``2 * workers + 2``) are in flight, so memory stays bounded:
    when item ``i`` is yielded, items up to ``i + window - 1`` have been submitted, and the next
    one is submitted only when the consumer asks for item ``i + 1``. One worker runs ``fn`` on
    the consumer's thread unless ``background``. When the consumer stops early (an exception,
    Ctrl-C), queued items are cancelled and the running ones finish before this returns.
    """
    window = window or 2 * workers + 2
    if workers <= 1 and not background:
        for item in items:
            yield fn(item)
        return
    pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix=name)
    pending: deque = deque()
    try:
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for f in pending:
            f.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
