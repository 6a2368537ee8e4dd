"""The CUDA engine with the inflate on the GPU: compressed bytes cross the bus, not pixels.

Per block and per input whose codec the GPU inflates::

    reader thread    pread the block's compressed segments into one pinned buffer (a ring of
                     depth + 1), read their framing (zlib header and trailer, LZ4 block table)
    copy stream      host-to-device copy of those bytes into the slot's compressed buffer
    compute stream   FillOrder=2 bit reversal; one batched inflate (nvCOMP, or DALI for LZ4);
                     Adler-32 of every zlib segment; predictor undo; assembly of the segments
                     (with HDF5 unshuffle and byte swap) into the slot's rows; the count kernel

Inputs whose codec stays on the CPU (LZW, PackBits, LZMA, LZF, Blosc, uncompressed...) are read
and copied exactly as by the plain engine, in the same pass. The decoded sizes and the Adler-32
sums of block i are checked once block i + 1 is queued, so the check does not stall the GPU;
a mismatch is the reader's one-line "cannot be decoded" error.
"""

from __future__ import annotations

import os

import numpy as np

from ....errors import InputError, MemoryBudgetError
from ....model import Counts, RowRange
from ....streaming import prefetch
from .._device import is_out_of_memory
from .._engine import (CudaEngine, KernelLauncher, _Cancelled, _DeviceStream, _quiet_sync,
                       pinned_rows)
from .._kernels import get_function
from .._plan import THREADS, device_nbytes, grid_size, sub_blocks
from . import DECODE_KERNELS
from ._plan import BlockBatch, Entries, InputPlan, frame

#: Share of ``--memory`` the pinned rings of both inputs may hold (the plain engine's rings of
#: decoded rows hold 3/8 of it; compressed bytes exceed decoded ones only for stored data).
RING_SHARE = 2
#: iovecs of one ``preadv`` call (Linux IOV_MAX is 1024).
MAX_IOV = 1024


class DecodingCudaEngine(CudaEngine):
    """:class:`CudaEngine` that inflates the inputs that have a plan on the GPU.

    Parameters
    ----------
    engine : CudaEngine
        The engine whose devices and ring sizes are used.
    plans : (InputPlan or None, InputPlan or None)
        Body and dye plans; None keeps that input on the CPU decode path.
    decoders : (str, str)
        ``"nvcomp"`` or ``"dali"`` per input (ignored where the plan is None).
    memory : int
        The ``--memory`` budget the pinned compressed rings stay within.
    """

    def __init__(self, engine: CudaEngine, plans, decoders, memory: int):
        self.__dict__.update(engine.__dict__)
        self.plans = tuple(plans)
        self.decoders = tuple(decoders)
        self.memory = int(memory)
        self.stream_factory = self._make_stream

    def count_pair(self, body, body_enc, dye, dye_enc, blocks, progress=None):
        blocks = self.fit_ring([b for b in blocks if b.rows], (body, dye))
        return super().count_pair(body, body_enc, dye, dye_enc, blocks, progress)

    def ring_nbytes(self, blocks, readers) -> int:
        """Pinned bytes the rings hold for ``blocks``: compressed bytes for planned inputs,
        decoded rows for the others."""
        total = 0
        for plan, reader in zip(self.plans, readers):
            if plan is None:
                total += max(b.rows for b in blocks) * reader.row_nbytes
            else:
                total += max(plan.batch(b.row_start, b.row_stop).comp_nbytes for b in blocks)
        return (self.prefetch_depth + 1) * total

    def fit_ring(self, blocks, readers) -> list[RowRange]:
        """``blocks`` cut until the rings fit ``memory / RING_SHARE``.

        Raises
        ------
        MemoryBudgetError
            If blocks of one row still do not fit.
        """
        if not blocks:
            return blocks
        limit = self.memory // RING_SHARE
        rows = max(b.rows for b in blocks)
        while self.ring_nbytes(blocks, readers) > limit:
            if rows == 1:
                raise MemoryBudgetError(
                    f"the compressed segments of one row need {self.ring_nbytes(blocks, readers)}"
                    f" bytes of pinned buffers, more than half of --memory ({self.memory}); "
                    "raise --memory or use --decode cpu")
            rows = max(1, rows // 2)
            blocks = sub_blocks(blocks, rows)
        return blocks

    def _make_stream(self, device, readers, encs, depth, slots, tick, stop):
        return _DecodeStream(device, readers, encs, depth, slots, tick, stop, self.plans,
                             self.decoders)


class _DecodeStream(_DeviceStream):
    """One pass over some blocks on one device, inflating on the GPU (see the module docstring)."""

    def __init__(self, device, readers, encs, depth, slots, tick, stop, plans, decoders):
        super().__init__(device, readers, encs, depth, slots, tick, stop)
        self.plans = plans
        self.decoder_names = decoders

    def _count(self, blocks, copy_stream, compute_stream):
        import cupy

        launch = KernelLauncher(self.device, *self.encs)
        largest = max(b.rows for b in blocks)
        sms = int(cupy.cuda.Device(self.device).attributes["MultiProcessorCount"])
        inputs = []
        for reader, enc, plan, name in zip(self.readers, self.encs, self.plans,
                                           self.decoder_names):
            if plan is None:
                inputs.append(_HostInput(reader))
            else:
                inputs.append(_GpuInput(plan, blocks, self.device, name, compute_stream, sms))
        with compute_stream:
            counters = cupy.zeros(3, dtype=cupy.uint64)
        slots = []
        for _ in range(self.slots):
            slots.append([inp.device_slot(cupy, device_nbytes(largest, enc))
                          for inp, enc in zip(inputs, self.encs)])
        copied = [cupy.cuda.Event(block=True, disable_timing=True) for _ in slots]
        consumed = [cupy.cuda.Event(block=True, disable_timing=True) for _ in slots]
        used = [False] * len(slots)
        pending: list = []  # (event, checks) of the block queued last, checked after the next
        unchecked: list[RowRange] = []  # blocks queued whose decode is not checked yet
        ring = prefetch(inputs, blocks, depth=self.depth, alloc=lambda inp, rows: inp.alloc(rows))
        try:
            return self._run(ring, inputs, slots, copied, consumed, used, pending, unchecked,
                             launch, counters, copy_stream, compute_stream)
        except (InputError, _Cancelled):
            raise
        except Exception as exc:
            # nvCOMP assumes valid streams: damage may surface as a GPU error rather than a bad
            # size or checksum. The CPU readers decide, and give their own message.
            if not is_out_of_memory(exc):
                self._recheck_on_cpu(unchecked)
            raise exc
        finally:
            _quiet_sync(copy_stream)
            ring.close()
            _quiet_sync(compute_stream)

    def _recheck_on_cpu(self, unchecked) -> None:
        """Decode ``unchecked`` blocks of every planned input on the CPU; raises the reader's
        error for a damaged segment, returns if they all decode."""
        for reader, plan in zip(self.readers, self.plans):
            if plan is None:
                continue
            for rows in unchecked:
                reader.read_rows(rows.row_start, rows.row_stop)

    def _run(self, ring, inputs, slots, copied, consumed, used, pending, unchecked, launch,
             counters, copy_stream, compute_stream):
        import cupy
        from cupy.cuda import runtime

        for i, (rows, jobs) in enumerate(ring):
            if self.stop is not None and self.stop.is_set():
                raise _Cancelled()
            s = i % len(slots)
            unchecked.append(rows)
            if used[s]:
                copy_stream.wait_event(consumed[s])
            for inp, job, slot in zip(inputs, jobs, slots[s]):
                inp.upload(runtime, job, slot, copy_stream)
            copied[s].record(copy_stream)
            compute_stream.wait_event(copied[s])
            checks = []
            with compute_stream:
                for inp, job, slot in zip(inputs, jobs, slots[s]):
                    checks.append(inp.decode(cupy, runtime, job, slot, rows, compute_stream))
                launch(slots[s][0]["rows"], slots[s][1]["rows"], rows.rows, counters)
            consumed[s].record(compute_stream)
            used[s] = True
            copied[s].synchronize()  # the pinned buffers are refilled once we ask for more
            for event, done in pending:
                event.synchronize()
                _run_checks(done)
                del unchecked[0]
            pending[:] = [(consumed[s], checks)]
            self.rows_done += rows.rows
            self.tick(rows.rows)
        compute_stream.synchronize()
        for _event, done in pending:
            _run_checks(done)
        unchecked.clear()
        body, dye, both = (int(v) for v in counters.get())
        return Counts(body=body, dye_in_body=both, dye=dye)


def _run_checks(checks) -> None:
    for check in checks:
        if check is not None:
            check()


class _HostInput:
    """An input decoded on the CPU: rows into pinned memory, copied as they are."""

    def __init__(self, reader):
        self.reader = reader

    def alloc(self, rows: int):
        return pinned_rows(self.reader, rows)

    def read_rows(self, row_start, row_stop, out):
        return self.reader.read_rows(row_start, row_stop, out=out)

    def device_slot(self, cupy, row_nbytes: int) -> dict:
        return {"rows": cupy.empty(row_nbytes, dtype=cupy.uint8)}

    def upload(self, runtime, host, slot, stream) -> None:
        runtime.memcpyAsync(slot["rows"].data.ptr, host.ctypes.data, host.nbytes,
                            runtime.memcpyHostToDevice, stream.ptr)

    def decode(self, cupy, runtime, host, slot, rows, stream):
        return None


class _Job:
    """One block of one planned input: its batch, framing and pinned compressed bytes."""

    def __init__(self, batch: BlockBatch, entries: Entries, host: np.ndarray):
        self.batch, self.entries, self.host = batch, entries, host


class _GpuInput:
    """An input inflated on the GPU (see the module docstring)."""

    def __init__(self, plan: InputPlan, blocks, device: int, decoder: str, stream, sms: int):
        self.plan = plan
        self._sms = sms
        self.device = device
        batches = [plan.batch(b.row_start, b.row_stop) for b in blocks]
        self.comp_nbytes = max(b.comp_nbytes for b in batches)
        self.dec_nbytes = max(b.dec_nbytes for b in batches)
        self.max_segments = max(len(b.index) for b in batches)
        self.decoder_name = decoder
        if decoder == "dali":
            from ._dali import DaliLz4Decoder

            # One sample an LZ4 block; a chunk usually is one block (the filter's default block
            # is 1 GiB), and larger batches go through the pipeline in parts.
            self.decoder = DaliLz4Decoder(device, max_batch=self.max_segments)
        else:
            from ._nvcomp import BatchDecoder

            self.decoder = BatchDecoder(plan.codec, device, stream.ptr)
        self.decoder_stream = stream
        self._k = {name: get_function(device, file, name) for file, name in DECODE_KERNELS}

    # -- host side ----------------------------------------------------------------------------
    def alloc(self, rows: int):
        """Page-locked bytes of exactly the largest block's compressed segments (not through
        CuPy's pinned pool, which rounds up and keeps freed blocks: see ``pinned_rows``)."""
        import cupy

        mem = cupy.cuda.PinnedMemoryPointer(cupy.cuda.PinnedMemory(max(1, self.comp_nbytes)), 0)
        return np.ndarray((max(1, self.comp_nbytes),), dtype=np.uint8, buffer=mem)

    def read_rows(self, row_start, row_stop, out):
        plan = self.plan
        batch = plan.batch(row_start, row_stop)
        host = out[:batch.comp_nbytes]
        try:
            _read_segments(plan.fd, batch, host)
        except EOFError as exc:
            raise plan.damaged(batch.index[0], str(exc)) from None
        return _Job(batch, frame(plan, batch, host), host)

    # -- device side --------------------------------------------------------------------------
    def device_slot(self, cupy, row_nbytes: int) -> dict:
        return {"rows": cupy.empty(row_nbytes, dtype=cupy.uint8),
                "comp": cupy.empty(max(16, self.comp_nbytes), dtype=cupy.uint8),
                "dec": cupy.empty(max(16, self.dec_nbytes), dtype=cupy.uint8),
                "adler": cupy.empty(max(1, self.max_segments), dtype=cupy.uint32)}

    def upload(self, runtime, job: _Job, slot, stream) -> None:
        runtime.memcpyAsync(slot["comp"].data.ptr, job.host.ctypes.data, job.host.nbytes,
                            runtime.memcpyHostToDevice, stream.ptr)

    def decode(self, cupy, runtime, job: _Job, slot, rows: RowRange, stream):
        """Queue everything from compressed bytes to rows on ``stream``; returns the check."""
        plan, batch, entries = self.plan, job.batch, job.entries
        u32 = np.uint32
        comp, dec = slot["comp"], slot["dec"]
        if plan.reverse_bits:
            n = batch.comp_nbytes
            self._k["reverse_bits"]((grid_size(n, self._sms),), (THREADS,), (comp, u32(0), u32(n)))
        handle = None
        if len(entries.comp_at):
            # An exception here (nvCOMP refusing a stream) is rechecked on the CPU by the caller.
            handle = self.decoder.decode(comp, entries.comp_at, entries.comp_size, dec,
                                         entries.dec_at, entries.dec_size)
        for src, dst, nbytes in entries.stored:
            runtime.memcpyAsync(dec.data.ptr + dst, comp.data.ptr + src, nbytes,
                                runtime.memcpyDeviceToDevice, stream.ptr)
        nseg = len(batch.index)
        at = cupy.asarray(batch.dec_at.astype(np.uint64))
        size = cupy.asarray(batch.decoded.astype(np.uint32))
        keep = [at, size]  # alive until this block is checked (after its kernels ran)
        if entries.adler is not None:
            self._k["adler32_segments"]((min(nseg, 8 * self._sms),), (THREADS,),
                                        (dec, at, u32(nseg), size, slot["adler"]))
        if plan.predictor:
            self._k["undo_predictor"]((min(nseg * plan.seg_rows, 65535),), (THREADS,),
                                      (dec, at, u32(nseg), size, u32(plan.seg_rows),
                                       u32(plan.seg_row_bytes), u32(plan.itemsize),
                                       u32(plan.swap)))
        n = rows.rows * plan.row_bytes
        swap = plan.swap and not plan.predictor  # the predictor kernel writes native order
        self._k["assemble_rows"]((grid_size(n, self._sms),), (THREADS,), (
            slot["rows"], dec, u32(rows.rows), at, u32(rows.row_start), u32(plan.row_bytes),
            u32(plan.seg_rows), u32(plan.seg_row_bytes), u32(batch.first_band), u32(plan.across),
            u32(swap), u32(plan.itemsize if plan.shuffle else 1)))
        adler_dev = slot["adler"]

        def check() -> None:
            del keep[:]
            if handle is not None:
                got = np.asarray(self.decoder.decoded_sizes(handle), dtype=np.int64)
                bad = np.flatnonzero(got != entries.dec_size)
                if bad.size:
                    k = int(bad[0])
                    seg = int(entries.owner[k])
                    raise plan.damaged(batch.index[seg], f"decodes to {int(got[k])} bytes, "
                                       f"expected {int(entries.dec_size[k])}")
            if entries.adler is not None:
                sums = adler_dev.get()[:nseg]
                bad = np.flatnonzero(sums != entries.adler)
                if bad.size:
                    k = int(bad[0])
                    raise plan.damaged(batch.index[k], f"Adler-32 is {int(sums[k]):#010x}, its "
                                       f"trailer says {int(entries.adler[k]):#010x}")

        return check


def _read_segments(fd: int, batch: BlockBatch, host: np.ndarray) -> None:
    """Read every segment of ``batch`` into ``host`` at its ``comp_at``; file-contiguous runs
    (strips written one after the other) are one ``preadv`` each."""
    n = len(batch.index)
    i = 0
    while i < n:
        j = i + 1
        end = int(batch.file_offsets[i] + batch.counts[i])
        while j < n and j - i < MAX_IOV and int(batch.file_offsets[j]) == end:
            end += int(batch.counts[j])
            j += 1
        views = [memoryview(host[int(batch.comp_at[k]):int(batch.comp_at[k] + batch.counts[k])])
                 for k in range(i, j)]
        want = end - int(batch.file_offsets[i])
        got = os.preadv(fd, views, int(batch.file_offsets[i])) if want else 0
        if got != want:
            raise EOFError(f"segments at byte {int(batch.file_offsets[i])} need {want} bytes, "
                           f"the file has {got}")
        i = j
