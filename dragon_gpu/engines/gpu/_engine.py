"""The CUDA engine: row blocks streamed through pinned buffers into raw CuPy kernels.

One pipeline per device, three stages that overlap::

    reader thread         decode block i + 2 straight into a pinned host buffer (prefetch ring)
    copy stream           host-to-device copy of block i + 1 into a device slot
    compute stream        kernel on block i, adding into three device uint64 counters

Events order the stages without the host waiting on the GPU: the copy of a block into a device
slot waits (on the GPU) for the kernel that last used the slot, the kernel waits for its copy,
and the host waits only for a block's copy to finish before the prefetch ring may overwrite that
block's pinned buffer. The counters are read once, at the end. Memory is bounded by the rings:
``depth + 1`` pinned block pairs on the host and ``slots`` block pairs on each device.
"""

from __future__ import annotations

import threading
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Sequence

import numpy as np

from ...errors import GpuUnavailableError, MemoryBudgetError, UsageError
from ...io.base import Encoding, MaskReader
from ...model import Counts, RowRange
from ...streaming import prefetch
from ..base import Engine, Progress
from ._device import as_gpu_error, is_out_of_memory, probe_device
from ._kernels import get_function
from ._plan import (THREADS, device_nbytes, grid_size, kernel_for, max_rows, split_for_devices,
                    sub_blocks, work_items)

#: Largest block pair (body + dye rows) a device pipeline streams at once: large enough that a
#: copy runs at the bus's full speed, small enough that three pinned pairs and two device pairs
#: stay modest.
MAX_BLOCK_NBYTES = 128 << 20


class KernelLauncher:
    """The counting kernel of one encoding pair, loaded on one device.

    Calling it launches the kernel on the current CuPy stream; it adds the counts of ``rows``
    rows to ``counters`` and returns at once (no synchronisation).

    Parameters
    ----------
    device : int
        CUDA device ordinal; the caller makes it current before calling.
    body_enc, dye_enc : Encoding
        The storage encodings and pixel rules of the pair.
    """

    def __init__(self, device: int, body_enc: Encoding, dye_enc: Encoding):
        import cupy

        self.spec = kernel_for(body_enc, dye_enc)
        self.width = body_enc.width
        self._fn = get_function(device, self.spec.file, self.spec.name)
        self._sms = int(cupy.cuda.Device(device).attributes["MultiProcessorCount"])
        u32 = np.uint32
        self._rules = (u32(body_enc.rule.threshold), u32(body_enc.rule.high),
                       u32(dye_enc.rule.threshold), u32(dye_enc.rule.high))

    def __call__(self, body, dye, rows: int, counters) -> None:
        """Add the counts of ``rows`` rows of the device buffers ``body`` and ``dye``.

        ``body`` / ``dye`` are 16-byte aligned CuPy arrays holding the rows exactly as the reader
        delivers them; ``counters`` is a CuPy uint64 array of 3: body, dye, dye_in_body.
        """
        if rows * self.width > (1 << 31) - 1:
            raise ValueError(f"{rows} rows of {self.width} pixels exceed one launch")
        grid = grid_size(work_items(self.spec, rows, self.width), self._sms)
        self._fn((grid,), (THREADS,),
                 (body, dye, np.uint32(rows), np.uint32(self.width), *self._rules, counters))


class CudaEngine(Engine):
    """Counts a pair on one or more GPUs; exactly the counts of the CPU engine.

    Parameters
    ----------
    devices : sequence of int
        CUDA device ordinals. With several, the blocks are split into contiguous row ranges,
        one pipeline (thread) per device, and the counts summed exactly.
    prefetch_depth : int
        Blocks read ahead into pinned buffers (the ring holds ``prefetch_depth + 1``).
    device_slots : int
        Device buffers per input: 2 lets one block's copy overlap the previous block's kernel.
    max_block_nbytes : int
        Largest block pair (body + dye bytes) streamed at once; larger planned blocks are cut.

    Raises
    ------
    GpuUnavailableError
        If a device is not usable (see :func:`probe_device`).
    """

    def __init__(self, devices: Sequence[int] = (0,), prefetch_depth: int = 2,
                 device_slots: int = 2, max_block_nbytes: int = MAX_BLOCK_NBYTES):
        self.devices = [int(d) for d in devices]
        if not self.devices:
            raise UsageError("no GPU named")
        for device in self.devices:
            why = probe_device(device)
            if why is not None:
                raise GpuUnavailableError(why)
        if prefetch_depth < 1 or device_slots < 1 or max_block_nbytes < 1:
            raise ValueError("prefetch_depth, device_slots and max_block_nbytes must be positive")
        self.prefetch_depth = prefetch_depth
        self.device_slots = device_slots
        self.max_block_nbytes = max_block_nbytes
        self.name = "cuda:" + ",".join(map(str, self.devices))

    def count_pair(self, body: MaskReader, body_enc: Encoding, dye: MaskReader, dye_enc: Encoding,
                   blocks: Sequence[RowRange], progress: Progress | None = None) -> Counts:
        kernel_for(body_enc, dye_enc)  # an encoding without a kernel fails before any work
        blocks = [b for b in blocks if b.rows]
        if not blocks:
            return Counts()
        n = len(self.devices)
        # Each device has its own rings: n pipelines with blocks 1/n as large hold what one would.
        largest = max(b.rows for b in blocks)
        cap = min(-(-largest // n),
                  max_rows(body_enc.width, body_enc.row_nbytes + dye_enc.row_nbytes,
                           self.max_block_nbytes))
        runs = split_for_devices(sub_blocks(blocks, cap), n)
        tick = _SafeProgress(progress)
        if n == 1:
            return self._count_on_device(self.devices[0], body, body_enc, dye, dye_enc, runs[0],
                                         tick, None)
        return self._count_on_devices(body, body_enc, dye, dye_enc, runs, tick)

    # -- several devices --------------------------------------------------------------------------
    def _count_on_devices(self, body, body_enc, dye, dye_enc, runs, tick) -> Counts:
        # Readers serve one thread at a time: the pipelines share each reader behind a lock
        # (copies and kernels still run on all devices at once).
        shared_body = _SharedReader(body)
        shared_dye = _SharedReader(dye)
        stop = threading.Event()
        with ThreadPoolExecutor(len(self.devices), thread_name_prefix="dragon-cuda") as pool:
            futures = [pool.submit(self._count_on_device, device, shared_body, body_enc,
                                   shared_dye, dye_enc, run, tick, stop)
                       for device, run in zip(self.devices, runs) if run]
            try:
                wait(futures, return_when=FIRST_EXCEPTION)
            finally:
                stop.set()  # no-op when all finished; stops the others after a failure or Ctrl-C
            errors = [f.exception() for f in futures if f.exception() is not None]
            real = [e for e in errors if not isinstance(e, _Cancelled)]
            if real or errors:
                raise (real or errors)[0]
            return Counts.total(f.result() for f in futures)

    # -- one device -------------------------------------------------------------------------------
    def _count_on_device(self, device, body, body_enc, dye, dye_enc, blocks, tick, stop) -> Counts:
        """Counts of ``blocks`` on ``device``; on running out of memory before any block was
        done, retries with blocks half as large."""
        rows = max(b.rows for b in blocks)
        while True:
            # A subclass may stream differently (the GPU-decode engine inflates on the device).
            factory = getattr(self, "stream_factory", _DeviceStream)
            run = factory(device, body, body_enc, dye, dye_enc, self.prefetch_depth,
                          self.device_slots, tick, stop)
            try:
                return run.count(sub_blocks(blocks, rows))
            except BaseException as exc:
                if is_out_of_memory(exc):
                    _release_pools(device)
                    if rows > 1 and run.rows_done == 0:
                        rows //= 2
                        continue
                    where = ("while counting" if run.rows_done else
                             f"even with blocks of {rows} row{'s' if rows != 1 else ''}")
                    raise MemoryBudgetError(f"GPU {device} ran out of memory {where}") from None
                err = as_gpu_error(device, exc)
                if err is exc:
                    raise
                raise err from None


class _DeviceStream:
    """One pass of the pipeline over some blocks on one device (see the module docstring)."""

    def __init__(self, device, body, body_enc, dye, dye_enc, depth, slots, tick, stop):
        self.device = device
        self.readers = (body, dye)
        self.encs = (body_enc, dye_enc)
        self.depth = depth
        self.slots = slots
        self.tick = tick
        self.stop = stop
        self.rows_done = 0

    def count(self, blocks: list[RowRange]) -> Counts:
        import cupy

        with cupy.cuda.Device(self.device):
            copy_stream = cupy.cuda.Stream(non_blocking=True)
            compute_stream = cupy.cuda.Stream(non_blocking=True)
            return self._count(blocks, copy_stream, compute_stream)

    def _count(self, blocks, copy_stream, compute_stream) -> Counts:
        import cupy
        import cupyx
        from cupy.cuda import runtime

        body_enc, dye_enc = self.encs
        launch = KernelLauncher(self.device, body_enc, dye_enc)
        largest = max(b.rows for b in blocks)
        with compute_stream:  # zeroed on the stream that adds to them
            counters = cupy.zeros(3, dtype=cupy.uint64)
        slots = [tuple(cupy.empty(device_nbytes(largest, enc), dtype=cupy.uint8)
                       for enc in self.encs) for _ in range(self.slots)]
        copied = [cupy.cuda.Event(block=True, disable_timing=True) for _ in slots]
        consumed = [cupy.cuda.Event(block=True, disable_timing=True) for _ in slots]
        used = [False] * len(slots)

        def pinned(reader: MaskReader, rows: int) -> np.ndarray:
            return cupyx.empty_pinned((rows, reader.row_items), dtype=reader.dtype)

        to_device = runtime.memcpyHostToDevice
        ring = prefetch(self.readers, blocks, depth=self.depth, alloc=pinned)
        try:
            for i, (rows, hosts) in enumerate(ring):
                if self.stop is not None and self.stop.is_set():
                    raise _Cancelled()
                s = i % len(slots)
                if used[s]:  # the GPU, not the host, waits for the kernel that last read slot s
                    copy_stream.wait_event(consumed[s])
                for host, dev in zip(hosts, slots[s]):
                    runtime.memcpyAsync(dev.data.ptr, host.ctypes.data, host.nbytes, to_device,
                                        copy_stream.ptr)
                copied[s].record(copy_stream)
                compute_stream.wait_event(copied[s])
                with compute_stream:
                    launch(slots[s][0], slots[s][1], rows.rows, counters)
                consumed[s].record(compute_stream)
                used[s] = True
                # The prefetch ring overwrites these pinned buffers once the next block is asked
                # for, so their copy must be done; the kernel may still be running.
                copied[s].synchronize()
                self.rows_done += rows.rows
                self.tick(rows.rows)
            compute_stream.synchronize()
        finally:
            # After an error, nothing may still read a buffer when it is freed (pinned ring,
            # device slots).
            _quiet_sync(copy_stream)
            ring.close()
            _quiet_sync(compute_stream)
        body, dye, both = (int(v) for v in counters.get())
        return Counts(body=body, dye_in_body=both, dye=dye)


class _Cancelled(Exception):
    """Another device's pipeline failed; this one stops at its next block."""


class _SharedReader:
    """A reader used by several pipelines: ``read_rows`` calls take turns."""

    def __init__(self, reader: MaskReader):
        self._reader = reader
        self._lock = threading.Lock()

    def __getattr__(self, name):
        return getattr(self._reader, name)

    def read_rows(self, row_start, row_stop, out=None):
        with self._lock:
            return self._reader.read_rows(row_start, row_stop, out=out)


class _SafeProgress:
    """``progress(rows)`` callable from several pipeline threads."""

    def __init__(self, progress: Progress | None):
        self._progress = progress
        self._lock = threading.Lock()

    def __call__(self, rows: int) -> None:
        if self._progress is not None:
            with self._lock:
                self._progress(rows)


def _quiet_sync(stream) -> None:
    try:
        stream.synchronize()
    except Exception:  # the error that matters is already propagating
        pass


def _release_pools(device: int) -> None:
    """Give CuPy's cached device and pinned memory back before retrying with smaller blocks."""
    try:
        import cupy

        with cupy.cuda.Device(device):
            cupy.get_default_memory_pool().free_all_blocks()
        cupy.get_default_pinned_memory_pool().free_all_blocks()
    except Exception:
        pass
