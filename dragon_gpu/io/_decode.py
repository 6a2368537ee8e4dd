"""Decoding of compressed segments (TIFF strips and tiles), shared by the readers.

Readers fetch a segment's raw bytes with ``os.pread`` (thread safe, no shared file position) and
decode them here with imagecodecs, which releases the GIL: a thread pool decodes the segments of
one block on every core.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import imagecodecs
import numpy as np

#: TIFF compression tag value -> (name, decoder). The decoders accept ``out=``.
TIFF_DECODERS = {
    1: ("none", None),
    5: ("lzw", imagecodecs.lzw_decode),
    8: ("deflate", imagecodecs.deflate_decode),  # libdeflate reads zlib streams; see RESULTS.md
    32946: ("deflate", imagecodecs.deflate_decode),
    32773: ("packbits", imagecodecs.packbits_decode),
    50000: ("zstd", imagecodecs.zstd_decode),
    34925: ("lzma", imagecodecs.lzma_decode),
}

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
