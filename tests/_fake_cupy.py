"""A stand-in for the parts of CuPy the CUDA engine uses, running the real kernels on the CPU.

It lets the engine's host code (streams, events, rings, device split, retries, error lines) run
end to end on a machine without a GPU. Kernels are the real ``.cu`` sources built as C++ (see
``_cuda_emulation.py``).

Streams are *lazy*: a copy or a kernel is queued and runs only when something waits for it (an
event or stream synchronisation, or another stream's ``wait_event`` that is itself run). Work
therefore runs as late as CUDA would allow, so a missing event shows up as wrong counts: a
pinned buffer refilled before its copy ran, or a device slot overwritten before its kernel ran.
With ``eager_kernels`` a kernel's stream runs as soon as the kernel is queued instead, as early
as its stream's waits allow, which catches a kernel that does not wait for its copy.
"""

from __future__ import annotations

import ctypes
import itertools
import threading
import types
from collections import deque
from pathlib import Path

import numpy as np

import _cuda_emulation as emu


class OutOfMemoryError(MemoryError):
    pass


OutOfMemoryError.__module__ = "cupy.cuda.memory"


class CUDARuntimeError(RuntimeError):
    def __init__(self, status: int, message: str):
        self.status = status
        super().__init__(message)


CUDARuntimeError.__module__ = "cupy_backends.cuda.api.runtime"


class FakeGpu:
    """Fake devices; :meth:`install` puts ``cupy`` / ``cupyx`` modules in ``sys.modules``.

    Parameters
    ----------
    workdir : Path
        Where the kernels are built.
    devices : int
        How many devices ``getDeviceCount`` reports.
    sms : int
        Multiprocessors a device reports (grids are ``8 * sms`` blocks at most).
    device_memory : int, optional
        Bytes of ``cupy.empty`` / ``cupy.zeros`` a device holds at once; more raises
        ``OutOfMemoryError``.
    fail_launch : str, optional
        A kernel name whose launches fail with a CUDA error when the stream runs them.
    eager_kernels : bool
        Run a kernel's stream as soon as the kernel is queued (see the module docstring).
    nvcomp : bool
        Also install a stand-in for nvCOMP's Python API (``nvidia.nvcomp``): its batched decode
        is queued on the codec's stream and inflates with the CPU codecs when the stream runs.
    """

    def __init__(self, workdir: Path, devices: int = 2, sms: int = 2,
                 device_memory: int | None = None, fail_launch: str | None = None,
                 eager_kernels: bool = False, nvcomp: bool = True):
        self.workdir = Path(workdir)
        self.nvcomp = nvcomp
        self.decodes: list[tuple[str, int]] = []  # (algorithm, entries) of each batched decode
        self.eager_kernels = eager_kernels
        self.devices = devices
        self.sms = sms
        self.device_memory = device_memory
        self.fail_launch = fail_launch
        self.launches: list[tuple[int, str, int]] = []  # (device, kernel, rows)
        self.allocated = [0] * devices
        self.largest_allocation = 0
        self._streams: dict[int, "Stream"] = {}
        self._ids = itertools.count(1)
        self._local = threading.local()
        self._lock = threading.Lock()

    # -- thread-local state ------------------------------------------------------------------------
    @property
    def device(self) -> int:
        return getattr(self._local, "device", 0)

    def current_stream(self) -> "Stream":
        stack = getattr(self._local, "streams", None)
        if stack:
            return stack[-1]
        null = getattr(self._local, "null", None)
        if null is None:
            null = self._local.null = Stream(self)
        return null

    # -- the modules -------------------------------------------------------------------------------
    def install(self, monkeypatch) -> None:
        gpu = self

        class Device:
            def __init__(self, device=None):
                self.id = gpu.device if device is None else int(device)
                self.attributes = {"MultiProcessorCount": gpu.sms}

            def __enter__(self):
                if not 0 <= self.id < gpu.devices:
                    raise CUDARuntimeError(101, "cudaErrorInvalidDevice: invalid device ordinal")
                self._previous = gpu.device
                gpu._local.device = self.id
                return self

            def __exit__(self, *exc):
                gpu._local.device = self._previous

        class Event:
            def __init__(self, block=False, disable_timing=False, interprocess=False):
                self.stream = None
                self.position = 0

            def record(self, stream=None):
                self.stream = stream or gpu.current_stream()
                self.position = self.stream.queued

            def synchronize(self):
                if self.stream is not None:
                    self.stream.run_until(self.position)

        def stream_factory(non_blocking=False, null=False, ptds=False, priority=None):
            return Stream(gpu)

        class RawModule:
            def __init__(self, code=None, *, path=None, options=(), **kwargs):
                self.code = code

            def get_function(self, name):
                return Kernel(gpu, emu.build(self.code, gpu.workdir), name)

        def empty(shape, dtype=np.float64):
            return FakeArray(gpu, shape, dtype, fill=None)

        def zeros(shape, dtype=np.float64):
            arr = FakeArray(gpu, shape, dtype, fill=None)
            gpu.current_stream().enqueue(lambda: arr.host.fill(0))  # a memset on the stream
            return arr

        def memcpy_async(dst, src, size, kind, stream_ptr):
            gpu._streams[stream_ptr].enqueue(lambda: ctypes.memmove(dst, src, size))

        def empty_pinned(shape, dtype=np.float64, order="C"):
            out = np.empty(shape, dtype=dtype, order=order)
            out.view(np.uint8).reshape(-1)[:] = 0xA5  # garbage, as a reused buffer would hold
            return out

        def asarray(a, dtype=None):
            a = np.ascontiguousarray(a, dtype=dtype)
            arr = FakeArray(gpu, a.shape, a.dtype, fill=None)
            arr.host[...] = a
            return arr

        def set_limit(size=None, fraction=None):
            gpu.device_memory = size or None

        pool = types.SimpleNamespace(free_all_blocks=lambda: None, set_limit=set_limit)
        runtime = types.SimpleNamespace(
            getDeviceCount=lambda: gpu.devices, memcpyAsync=memcpy_async,
            memcpyHostToDevice=1, memcpyDeviceToDevice=3, CUDARuntimeError=CUDARuntimeError)
        memory = types.SimpleNamespace(OutOfMemoryError=OutOfMemoryError)
        cuda = types.ModuleType("cupy.cuda")
        cuda.Device, cuda.Event, cuda.Stream = Device, Event, stream_factory
        cuda.runtime, cuda.memory = runtime, memory
        cupy = types.ModuleType("cupy")
        cupy.cuda, cupy.RawModule = cuda, RawModule
        cupy.empty, cupy.zeros, cupy.asarray = empty, zeros, asarray
        cupy.uint8, cupy.uint32, cupy.uint64 = np.uint8, np.uint32, np.uint64
        cupy.get_default_memory_pool = lambda: pool
        cupy.get_default_pinned_memory_pool = lambda: pool
        cupyx = types.ModuleType("cupyx")
        cupyx.empty_pinned = empty_pinned
        monkeypatch.setitem(__import__("sys").modules, "cupy", cupy)
        monkeypatch.setitem(__import__("sys").modules, "cupy.cuda", cuda)
        monkeypatch.setitem(__import__("sys").modules, "cupyx", cupyx)
        if self.nvcomp:
            nvidia = types.ModuleType("nvidia")
            nvidia.nvcomp = _fake_nvcomp(gpu)
            monkeypatch.setitem(__import__("sys").modules, "nvidia", nvidia)
            monkeypatch.setitem(__import__("sys").modules, "nvidia.nvcomp", nvidia.nvcomp)
        # Forget what an earlier test probed or compiled.
        from dragon_gpu.engines.gpu import _device, _kernels

        monkeypatch.setattr(_device, "_probed", {})
        monkeypatch.setattr(_kernels, "_modules", {})
        monkeypatch.setattr(_kernels, "_functions", {})


class Stream:
    """A queue of operations run in order, as late as possible (see the module docstring)."""

    def __init__(self, gpu: FakeGpu):
        self.gpu = gpu
        self.ptr = next(gpu._ids)
        gpu._streams[self.ptr] = self
        self.ops: deque = deque()
        self.queued = 0
        self.done = 0
        self._lock = threading.RLock()

    def enqueue(self, op) -> None:
        with self._lock:
            self.ops.append(op)
            self.queued += 1

    def run_until(self, position: int) -> None:
        with self._lock:
            while self.done < position:
                op = self.ops.popleft()
                self.done += 1
                op()

    def synchronize(self) -> None:
        self.run_until(self.queued)

    def wait_event(self, event) -> None:
        stream, position = event.stream, event.position
        if stream is not None:
            self.enqueue(lambda: stream.run_until(position))

    def __enter__(self):
        local = self.gpu._local
        if not hasattr(local, "streams"):
            local.streams = []
        local.streams.append(self)
        return self

    def __exit__(self, *exc):
        self.gpu._local.streams.pop()


class FakeArray:
    """Device memory: a host NumPy array, garbage until written."""

    def __init__(self, gpu: FakeGpu, shape, dtype, fill):
        self.gpu = gpu
        self.device = gpu.device
        self.host = np.empty(shape, dtype=dtype)
        nbytes = self.host.nbytes
        with gpu._lock:
            limit = gpu.device_memory
            if limit is not None and gpu.allocated[self.device] + nbytes > limit:
                raise OutOfMemoryError(f"out of memory allocating {nbytes} bytes")
            gpu.allocated[self.device] += nbytes
            gpu.largest_allocation = max(gpu.largest_allocation, nbytes)
        self.host.view(np.uint8).reshape(-1)[:] = 0x5A
        self.nbytes = nbytes
        self.data = types.SimpleNamespace(ptr=self.host.ctypes.data)

    def __del__(self):
        try:
            with self.gpu._lock:
                self.gpu.allocated[self.device] -= self.nbytes
        except Exception:
            pass

    def get(self, stream=None):
        self.gpu.current_stream().synchronize()
        return self.host.copy()


class Kernel:
    def __init__(self, gpu: FakeGpu, lib, name: str):
        self.gpu, self.lib, self.name = gpu, lib, name

    def __call__(self, grid, block, args, shared_mem=0):
        gpu = self.gpu
        device = gpu.device
        pointers = [a.data.ptr if isinstance(a, FakeArray) else a for a in args]
        if self.name != "probe":
            rows = int(args[2]) if isinstance(args[2], (int, np.integer)) else -1
            gpu.launches.append((device, self.name, rows))
        fail = gpu.fail_launch == self.name

        def run():
            if fail:
                raise CUDARuntimeError(700, "cudaErrorIllegalAddress: an illegal memory access "
                                            "was encountered\n(more detail)")
            emu.launch(self.lib, self.name, int(grid[0]), int(block[0]), pointers)

        stream = gpu.current_stream()
        stream.enqueue(run)
        if gpu.eager_kernels:
            stream.synchronize()


def _cpu_inflate(algorithm: str, data: bytes, want: int) -> bytes:
    """What nvCOMP's RAW decode of one entry gives, with the CPU codecs (b"" when it fails)."""
    import zlib

    import imagecodecs

    try:
        if algorithm == "Deflate":
            return zlib.decompressobj(-15).decompress(data, want + 1)
        if algorithm == "Zstd":
            return imagecodecs.zstd_decode(data)
        return imagecodecs.lz4_decode(data, header=False, out=want)
    except Exception:
        return b""


def _fake_nvcomp(gpu: FakeGpu):
    """A stand-in for the parts of ``nvidia.nvcomp`` 6.x the decode path uses."""

    class Batch:
        def __init__(self, buffer, offsets, sizes, stream, align=16):
            self.buffer, self.offsets, self.sizes = buffer, list(offsets), list(sizes)
            self.stream = stream
            for o, n in zip(self.offsets, self.sizes):
                if o % align or o + n > buffer.nbytes:
                    raise ValueError(f"entry at {o} of {n} bytes does not fit or is misaligned")

        @property
        def buffer_sizes(self):
            self.stream.synchronize()  # indexing a batch waits for the work that produced it
            return list(self.sizes)

    def as_arrays(buffer, offsets, sizes, cuda_stream=None):
        # LZ4 blocks of a chunk follow each other unaligned; nvCOMP's LZ4 reads bytes.
        return Batch(buffer, offsets, sizes, gpu._streams[cuda_stream], align=1)

    class Codec:
        def __init__(self, algorithm=None, device_id=None, cuda_stream=None, bitstream_kind=None,
                     **options):
            assert bitstream_kind == "RAW", bitstream_kind
            assert algorithm in ("Deflate", "Zstd", "LZ4"), algorithm
            self.algorithm, self.stream = algorithm, gpu._streams[cuda_stream]

        def compression_config(self, sizes):
            return ("config", list(sizes))

        def decompression_config(self, config):
            return config

        def decode(self, srcs, out=None, decompression_config=None):
            assert out is not None and decompression_config[1] == out.sizes
            if self.algorithm != "LZ4":  # deflate bodies and zstd frames start aligned
                assert all(o % 16 == 0 for o in srcs.offsets), srcs.offsets
            assert all(o % 16 == 0 for o in out.offsets), out.offsets
            result = Batch(out.buffer, out.offsets, [0] * len(out.sizes), self.stream)
            gpu.decodes.append((self.algorithm, len(srcs.sizes)))
            comp, dec = srcs.buffer.host.view(np.uint8).reshape(-1), out.buffer.host.view(
                np.uint8).reshape(-1)

            def run():  # when the codec's stream gets there, as nvCOMP's kernels would
                for k, (a, n, d, w) in enumerate(zip(srcs.offsets, srcs.sizes, out.offsets,
                                                     out.sizes)):
                    got = np.frombuffer(_cpu_inflate(self.algorithm, comp[a:a + n].tobytes(), w),
                                        np.uint8)
                    keep = min(got.size, w)
                    dec[d:d + keep] = got[:keep]
                    result.sizes[k] = got.size

            self.stream.enqueue(run)
            return result

    module = types.ModuleType("nvidia.nvcomp")
    module.as_arrays, module.Codec = as_arrays, Codec
    module.BitstreamKind = types.SimpleNamespace(RAW="RAW", NVCOMP_NATIVE="NVCOMP_NATIVE")
    return module
