"""The CUDA engine: row blocks streamed through pinned buffers into raw CuPy kernels.

One pipeline per device, three stages that overlap::

    reader thread         decode block i + 2 straight into a pinned host buffer (prefetch ring)
    copy stream           host-to-device copy of block i + 1 into a device slot
    compute stream        kernel on block i, adding into three device uint64 counters

Events order the stages without the host waiting on the GPU: the copy of a block into a device
slot waits (on the GPU) for the kernel that last used the slot, the kernel waits for its copy,
and the host waits only for a block's copy to finish before the prefetch ring may overwrite that
block's pinned buffer. The counters are read once, at the end. Memory is bounded by the rings:
``depth + 1`` pinned block pairs on the host (allocated for the pair, exactly that size, and freed
with it) and ``slots`` block pairs on each device. Each device's pipeline runs on that device's
own thread (:mod:`._context`); a CUDA error other than out-of-memory marks the device dead.

Histograms (:meth:`CudaEngine.histogram`) stream the same way on the first device, with the
histogram kernel adding into a device uint64 histogram instead of three counters.
"""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import FIRST_EXCEPTION, wait
from typing import Sequence

import numpy as np

from ...errors import GpuUnavailableError, MemoryBudgetError, UsageError
from ...io.base import Encoding, MaskReader, PixelRule
from ...model import Counts, RowRange, Tick
from ...streaming import prefetch
from ..base import Engine
from ._context import mark_dead, on_device, submit
from ._device import as_gpu_error, is_out_of_memory, probe
from ._kernels import get_function
from ._plan import (ALIGN, THREADS, device_nbytes, grid_size, histogram_for, histogram_grid,
                    kernel_for, max_rows, split_for_devices, sub_blocks, work_items)

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
        self._row_nbytes = (body_enc.row_nbytes, dye_enc.row_nbytes)
        self._fn = get_function(device, self.spec.file, self.spec.name)
        self._sms = int(cupy.cuda.Device(device).attributes["MultiProcessorCount"])
        u32 = np.uint32
        self._rules = (u32(body_enc.rule.threshold), u32(body_enc.rule.high),
                       u32(dye_enc.rule.threshold), u32(dye_enc.rule.high))

    def __call__(self, body, dye, rows: int, counters) -> None:
        """Add the counts of ``rows`` rows of the device buffers ``body`` and ``dye``.

        ``body`` / ``dye`` are 16-byte aligned CuPy arrays holding the rows exactly as the reader
        delivers them; ``counters`` is a CuPy uint64 array of 3: body, dye, dye_in_body.

        Raises
        ------
        ValueError
            If a buffer is not 16-byte aligned, not C-contiguous or shorter than ``rows`` rows
            (three counters), or the launch would exceed 2**31 - 1 pixels.
        """
        if rows * self.width > (1 << 31) - 1:
            raise ValueError(f"{rows} rows of {self.width} pixels exceed one launch")
        # The kernels read with 16-byte vector loads up to the last row: a buffer that is not
        # aligned, not contiguous or too short would fault (cudaErrorMisalignedAddress, 716) and
        # kill the context, so it is refused here with a plain error instead.
        for what, buf, row_nbytes in (("body", body, self._row_nbytes[0]),
                                      ("dye", dye, self._row_nbytes[1])):
            _check_buffer(what, buf, rows * row_nbytes)
        _check_buffer("counters", counters, 3 * 8)
        if np.dtype(counters.dtype) != np.uint64:
            raise ValueError(f"counters must be uint64, got {counters.dtype}")
        grid = grid_size(work_items(self.spec, rows, self.width), self._sms)
        self._fn((grid,), (THREADS,),
                 (body, dye, np.uint32(rows), np.uint32(self.width), *self._rules, counters))


class HistogramLauncher:
    """The histogram kernel of one plane (or a uint8 pair), loaded on one device.

    Calling it launches the kernel on the current CuPy stream; it adds the histogram of ``rows``
    rows to ``hist`` (a device uint64 array of ``spec.bins``) and returns at once.
    """

    def __init__(self, device: int, encs: Sequence[Encoding]):
        import cupy

        self.spec = histogram_for(encs)
        self.width = encs[0].width
        self._fn = get_function(device, self.spec.file, self.spec.name)
        self._sms = int(cupy.cuda.Device(device).attributes["MultiProcessorCount"])

    def __call__(self, buffers, rows: int, hist) -> None:
        if rows * self.width > (1 << 31) - 1:
            raise ValueError(f"{rows} rows of {self.width} pixels exceed one launch")
        grid = histogram_grid(self.spec, rows * self.width, self._sms)
        a = buffers[0]
        b = buffers[1] if len(buffers) > 1 else buffers[0]
        self._fn((grid,), (THREADS,), (a, b, np.uint32(rows), np.uint32(self.width), hist))


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
            found = probe(device)
            if found.problem is not None:
                raise GpuUnavailableError(found.problem, absent=found.absent)
        if prefetch_depth < 1 or device_slots < 1 or max_block_nbytes < 1:
            raise ValueError("prefetch_depth, device_slots and max_block_nbytes must be positive")
        self.prefetch_depth = prefetch_depth
        self.device_slots = device_slots
        self.max_block_nbytes = max_block_nbytes
        self.name = "cuda:" + ",".join(map(str, self.devices))

    def count_pair(self, body: MaskReader, body_enc: Encoding, dye: MaskReader, dye_enc: Encoding,
                   blocks: Sequence[RowRange], progress: Tick | None = None) -> Counts:
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
        return self._count_on_devices(body, body_enc, dye, dye_enc, runs, _SafeProgress(progress))

    def histogram(self, readers: Sequence[MaskReader], blocks: Sequence[RowRange],
                  progress: Tick | None = None) -> np.ndarray:
        """The exact histogram (see :meth:`Engine.histogram`), streamed through the first GPU
        with the counting pipeline's rings; equal bit for bit to the CPU's."""
        encs = tuple(Encoding(r.packed, r.width, r.dtype, _NO_RULE) for r in readers)
        bins = histogram_for(encs).bins  # rows without a kernel fail before any work
        blocks = [b for b in blocks if b.rows]
        if not blocks:
            return np.zeros(bins, np.int64)
        cap = max_rows(encs[0].width, sum(e.row_nbytes for e in encs), self.max_block_nbytes)
        device = self.devices[0]
        acc = on_device(device, self._count_on_device, device, readers, encs, None, None,
                        sub_blocks(blocks, cap), _SafeProgress(progress), None, True)
        return acc.astype(np.int64)

    # -- the device threads -----------------------------------------------------------------------
    def _count_on_devices(self, body, body_enc, dye, dye_enc, runs, tick) -> Counts:
        # Readers serve one thread at a time: the pipelines share each reader behind a lock
        # (copies and kernels still run on all devices at once).
        shared_body = _SharedReader(body) if len(runs) > 1 else body
        shared_dye = _SharedReader(dye) if len(runs) > 1 else dye
        stop = threading.Event()
        # Each pipeline runs on its device's own thread (see _context), all at once; this thread
        # only waits, and on Ctrl-C stops them at their next block.
        futures = [submit(device, self._count_on_device, device, shared_body, body_enc,
                          shared_dye, dye_enc, run, tick, stop)
                   for device, run in zip(self.devices, runs) if run]
        try:
            wait(futures, return_when=FIRST_EXCEPTION)
        finally:
            stop.set()  # no-op when all finished; stops the others after a failure or Ctrl-C
            wait(futures)  # the pipelines end at their next block; nothing runs on after this
        errors = [f.exception() for f in futures if f.exception() is not None]
        real = [e for e in errors if not isinstance(e, _Cancelled)]
        if real or errors:
            raise (real or errors)[0]
        return Counts.total(f.result() for f in futures)

    # -- one device -------------------------------------------------------------------------------
    def _count_on_device(self, device, body, body_enc, dye, dye_enc, blocks, tick, stop,
                         histogram: bool = False):
        """Counts of ``blocks`` on ``device`` (run on its thread); on running out of memory
        before any block was done, retries with blocks half as large. With ``histogram``,
        ``body`` / ``body_enc`` are the tuples of readers and encodings to histogram and the
        result is the histogram."""
        rows = max(b.rows for b in blocks)
        while True:
            if histogram:
                run = _DeviceStream(device, body, body_enc, self.prefetch_depth,
                                    self.device_slots, tick, stop, histogram=True)
            else:
                # A subclass may stream differently (the GPU-decode engine inflates on the device).
                factory = getattr(self, "stream_factory", _DeviceStream)
                run = factory(device, (body, dye), (body_enc, dye_enc), self.prefetch_depth,
                              self.device_slots, tick, stop)
            try:
                return run.count(sub_blocks(blocks, rows))
            except BaseException as exc:
                if not is_out_of_memory(exc):
                    err = as_gpu_error(device, exc)
                    if err is exc:
                        raise
                    mark_dead(device, str(err))  # a CUDA error other than memory: sticky
                    raise err from None
                rows_done = run.rows_done
            # Out of memory. Leaving the except clause dropped the exception and its traceback,
            # whose frames held the failed attempt's buffers; drop the attempt too, so the
            # pools can hand their memory back before the retry.
            del run
            _release_pools(device)
            if rows > 1 and rows_done == 0:
                rows //= 2
                continue
            where = ("while counting" if rows_done else
                     f"even with blocks of {rows} row{'s' if rows != 1 else ''}")
            raise MemoryBudgetError(f"GPU {device} ran out of memory {where}")


class _DeviceStream:
    """One pass of the pipeline over some blocks on one device (see the module docstring)."""

    def __init__(self, device, readers, encs, depth, slots, tick, stop, histogram=False):
        self.device = device
        self.readers = tuple(readers)
        self.encs = tuple(encs)
        self.histogram = histogram
        self.depth = depth
        self.slots = slots
        self.tick = tick
        self.stop = stop
        self.rows_done = 0

    def count(self, blocks: list[RowRange]):
        import cupy

        # On the device's thread: the device is current, and nothing restores another one.
        copy_stream = cupy.cuda.Stream(non_blocking=True)
        compute_stream = cupy.cuda.Stream(non_blocking=True)
        return self._count(blocks, copy_stream, compute_stream)

    def _count(self, blocks, copy_stream, compute_stream):
        import cupy
        from cupy.cuda import runtime

        if self.histogram:
            launch = HistogramLauncher(self.device, self.encs)
            size = launch.spec.bins
        else:
            kernel = KernelLauncher(self.device, *self.encs)
            size = 3

            def launch(buffers, rows, acc):
                kernel(buffers[0], buffers[1], rows, acc)
        largest = max(b.rows for b in blocks)
        with compute_stream:  # zeroed on the stream that adds to them
            counters = cupy.zeros(size, dtype=cupy.uint64)
        slots = [tuple(cupy.empty(device_nbytes(largest, enc), dtype=cupy.uint8)
                       for enc in self.encs) for _ in range(self.slots)]
        copied = [cupy.cuda.Event(block=True, disable_timing=True) for _ in slots]
        consumed = [cupy.cuda.Event(block=True, disable_timing=True) for _ in slots]
        used = [False] * len(slots)
        counted: deque = deque()  # (kernel's event, rows) not yet reported to progress

        to_device = runtime.memcpyHostToDevice
        ring = prefetch(self.readers, blocks, depth=self.depth, alloc=pinned_rows)
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
                    launch(slots[s], rows.rows, counters)
                consumed[s].record(compute_stream)
                counted.append((consumed[s], rows.rows))
                used[s] = True
                # The prefetch ring overwrites these pinned buffers once the next block is asked
                # for, so their copy must be done; the kernel may still be running.
                copied[s].synchronize()
                self._report(counted)
            compute_stream.synchronize()
            self._report(counted, wait_for=True)
        finally:
            # After an error, nothing may still read a buffer when it is freed (pinned ring,
            # device slots).
            _quiet_sync(copy_stream)
            ring.close()  # frees the pinned ring: it is this pair's alone
            _quiet_sync(compute_stream)
        if self.histogram:
            return counters.get()
        body, dye, both = (int(v) for v in counters.get())
        return Counts(body=body, dye_in_body=both, dye=dye)

    def _report(self, counted: deque, wait_for: bool = False) -> None:
        """Advance progress by the blocks whose kernel has finished, in order (``wait_for``:
        the compute stream has been synchronised, so every one has)."""
        while counted:
            event, rows = counted[0]
            if not (wait_for or event.done):
                break
            counted.popleft()
            self.rows_done += rows
            self.tick(rows)


def pinned_rows(reader: MaskReader, rows: int) -> np.ndarray:
    """A ``(rows, reader.row_items)`` array in page-locked host memory of exactly that size.

    Allocated with ``cudaHostAlloc`` directly rather than through CuPy's pinned pool, which
    rounds requests up and keeps freed blocks pinned until ``free_all_blocks()``: the ring then
    takes what ``--memory`` planned and is unpinned as soon as the pair is done.
    """
    import cupy

    dtype = np.dtype(reader.dtype)
    nbytes = rows * reader.row_items * dtype.itemsize
    mem = cupy.cuda.PinnedMemoryPointer(cupy.cuda.PinnedMemory(max(1, nbytes)), 0)
    return np.ndarray((rows, reader.row_items), dtype=dtype, buffer=mem)


#: the rule of a histogrammed input's Encoding: histograms ignore it.
_NO_RULE = PixelRule(1, True, "histogram")


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

    def __init__(self, progress: Tick | None):
        self._progress = progress
        self._lock = threading.Lock()

    def __call__(self, rows: int) -> None:
        if self._progress is not None:
            with self._lock:
                self._progress(rows)


def _check_buffer(what: str, buf, nbytes: int) -> None:
    ptr = buf.data.ptr
    if ptr % ALIGN:
        raise ValueError(f"{what} buffer at {ptr:#x} is not {ALIGN}-byte aligned")
    if not buf.flags.c_contiguous:
        raise ValueError(f"{what} buffer is not C-contiguous")
    if buf.nbytes < nbytes:
        raise ValueError(f"{what} buffer holds {buf.nbytes} bytes, fewer than the {nbytes} "
                         "the launch reads")


def _quiet_sync(stream) -> None:
    try:
        stream.synchronize()
    except Exception:  # the error that matters is already propagating
        pass


def _release_pools(device: int) -> None:
    """Give CuPy's cached device and pinned memory back before retrying with smaller blocks."""
    try:
        import cupy

        cupy.get_default_memory_pool().free_all_blocks()  # on the device's thread
        cupy.get_default_pinned_memory_pool().free_all_blocks()
    except Exception:
        pass
