"""A stand-in for the parts of CuPy the CUDA engine uses, running the real kernels on the CPU.

It lets the engine's host code (streams, events, rings, device split, retries, error lines) run
end to end on a machine without a GPU. Kernels are the real ``.cu`` sources built as C++ (see
``cuda_emulation.py``).

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
import weakref
from collections import deque
from pathlib import Path

import numpy as np

from tests.helpers import cuda_emulation as emu


class OutOfMemoryError(MemoryError):
    pass


OutOfMemoryError.__module__ = "cupy.cuda.memory"


class CUDARuntimeError(RuntimeError):
    def __init__(self, status: int, message: str):
        self.status = status
        super().__init__(message)


CUDARuntimeError.__module__ = "cupy_backends.cuda.api.runtime"


class CompileException(Exception):
    pass


CompileException.__module__ = "cupy.cuda.compiler"


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
        A kernel name whose launches fail with a CUDA error when the stream runs them. As on a
        GPU, the error is sticky: the device's context is dead, every later call on it fails,
        and its events' and streams' destructors raise (Python prints those as "Exception
        ignored in ..." unless something silences them).
    fail_compile : str, optional
        A kernel name whose ``get_function`` fails as NVRTC would on a compile error.
    eager_kernels : bool
        Run a kernel's stream as soon as the kernel is queued (see the module docstring).
    nvcomp : bool
        Also install a stand-in for nvCOMP's Python API (``nvidia.nvcomp``): its batched decode
        is queued on the codec's stream and inflates with the CPU codecs when the stream runs.

    Pinned host memory is counted: ``cupy.cuda.PinnedMemory`` holds exactly its size until it is
    freed (``pinned``, ``pinned_peak``); ``cupyx.empty_pinned`` goes through a model of CuPy's
    pinned pool, which rounds each request up to a power of two and keeps freed blocks pinned
    until ``free_all_blocks()``. ``touched`` lists the devices any thread made current.
    """

    def __init__(self, workdir: Path, devices: int = 2, sms: int = 2,
                 device_memory: int | None = None, fail_launch: str | None = None,
                 eager_kernels: bool = False, fail_compile: str | None = None,
                 nvcomp: bool = True):
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
        # Freed device memory stays in the pool until free_all_blocks(), as in CuPy's pinned pool
        # (CuPy's device pool also frees it when an allocation fails; this model is stricter).
        self.cached = [0] * devices
        self.largest_allocation = 0
        self.fail_compile = fail_compile
        self.dead: set[int] = set()
        self.touched: set[int] = set()
        self.kernels_run = 0  # launches whose kernel has actually run
        self.pinned = 0
        self.pinned_peak = 0
        self.pinned_pool_held = 0
        self.pinned_memory: int | None = None  # bytes of pinned host memory; more fails
        self._streams: "weakref.WeakValueDictionary[int, Stream]" = weakref.WeakValueDictionary()
        self._ids = itertools.count(1)
        self._local = threading.local()
        self._lock = threading.Lock()

    # -- thread-local state ------------------------------------------------------------------------
    @property
    def device(self) -> int:
        return getattr(self._local, "device", 0)

    def set_device(self, device: int) -> None:
        if not 0 <= device < self.devices:
            raise CUDARuntimeError(101, "cudaErrorInvalidDevice: invalid device ordinal")
        # As since CUDA 12: making a device current creates its primary context.
        self.touched.add(device)
        self._local.device = device

    def check_alive(self, device: int | None = None) -> None:
        if (self.device if device is None else device) in self.dead:
            raise CUDARuntimeError(700, "cudaErrorIllegalAddress: an illegal memory access was "
                                        "encountered")

    def pin(self, nbytes: int) -> None:
        with self._lock:
            limit = self.pinned_memory
            if nbytes > 0 and limit is not None and self.pinned + nbytes > limit:
                raise CUDARuntimeError(2, "cudaErrorMemoryAllocation: out of memory")
            self.pinned += nbytes
            self.pinned_peak = max(self.pinned_peak, self.pinned)

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
                self._previous = gpu.device
                gpu.set_device(self.id)
                return self

            def __exit__(self, *exc):
                gpu.set_device(self._previous)  # as CuPy does: the previous device again

            def use(self):
                gpu.set_device(self.id)

        class Event:
            def __init__(self, block=False, disable_timing=False, interprocess=False):
                gpu.check_alive()
                self.device = gpu.device
                self.stream = None
                self.position = 0

            def record(self, stream=None):
                gpu.check_alive()
                self.stream = stream or gpu.current_stream()
                self.position = self.stream.queued

            def synchronize(self):
                gpu.check_alive()
                if self.stream is not None:
                    self.stream.run_until(self.position)

            @property
            def done(self):
                gpu.check_alive()
                return self.stream is None or self.stream.done >= self.position

            def __del__(self):
                gpu.check_alive(self.device)  # cudaEventDestroy on a dead context

        def stream_factory(non_blocking=False, null=False, ptds=False, priority=None):
            return Stream(gpu)

        class RawModule:
            def __init__(self, code=None, *, path=None, options=(), **kwargs):
                self.code = code

            def get_function(self, name):
                gpu.check_alive()
                if name == gpu.fail_compile:
                    raise CompileException(f"kern.cu(12): error: identifier \"{name}_x\" is "
                                           "undefined\n1 error detected")
                return Kernel(gpu, emu.build(self.code, gpu.workdir), name)

        def empty(shape, dtype=np.float64):
            return FakeArray(gpu, shape, dtype, fill=None)

        def zeros(shape, dtype=np.float64):
            arr = FakeArray(gpu, shape, dtype, fill=None)
            gpu.current_stream().enqueue(lambda: arr.host.fill(0))  # a memset on the stream
            return arr

        def memcpy_async(dst, src, size, kind, stream_ptr):
            gpu.check_alive()
            gpu._streams[stream_ptr].enqueue(lambda: ctypes.memmove(dst, src, size))

        def empty_pinned(shape, dtype=np.float64, order="C"):
            out = np.empty(shape, dtype=dtype, order=order)
            out.view(np.uint8).reshape(-1)[:] = 0xA5  # garbage, as a reused buffer would hold
            held = 1 << max(0, int(out.nbytes - 1).bit_length())  # the pool's power of two
            gpu.pin(held)  # and it stays pinned in the pool until free_all_blocks()
            with gpu._lock:
                gpu.pinned_pool_held += held
            return out

        class PinnedMemory:
            def __init__(self, size, flags=0):
                gpu.check_alive()
                self.size = int(size)
                self.buffer = np.empty(self.size, dtype=np.uint8)
                self.buffer[:] = 0xA5
                gpu.pin(self.size)
                # Unpinned when the last array over it goes, as cudaFreeHost on CuPy's dealloc.
                weakref.finalize(self.buffer, gpu.pin, -self.size)

        def pinned_memory_pointer(mem, offset):
            return mem.buffer[offset:]  # exports the buffer, as CuPy's PinnedMemoryPointer

        def free_pinned_pool():
            with gpu._lock:
                gpu.pinned -= gpu.pinned_pool_held
                gpu.pinned_pool_held = 0

        def set_device(device):
            gpu.set_device(int(device))

        def asarray(a, dtype=None):
            a = np.ascontiguousarray(a, dtype=dtype)
            arr = FakeArray(gpu, a.shape, a.dtype, fill=None)
            arr.host[...] = a
            return arr

        def set_limit(size=None, fraction=None):
            gpu.device_memory = size or None

        def free_device_pool():
            with gpu._lock:
                gpu.cached[gpu.device] = 0

        pool = types.SimpleNamespace(free_all_blocks=free_device_pool, set_limit=set_limit)
        pinned_pool = types.SimpleNamespace(free_all_blocks=free_pinned_pool)
        runtime = types.SimpleNamespace(
            getDeviceCount=lambda: gpu.devices, memcpyAsync=memcpy_async,
            memcpyHostToDevice=1, memcpyDeviceToDevice=3, CUDARuntimeError=CUDARuntimeError,
            setDevice=set_device)
        memory = types.SimpleNamespace(OutOfMemoryError=OutOfMemoryError)
        cuda = types.ModuleType("cupy.cuda")
        cuda.Device, cuda.Event, cuda.Stream = Device, Event, stream_factory
        cuda.PinnedMemory, cuda.PinnedMemoryPointer = PinnedMemory, pinned_memory_pointer
        cuda.runtime, cuda.memory = runtime, memory
        cupy = types.ModuleType("cupy")
        cupy.cuda, cupy.RawModule = cuda, RawModule
        cupy.empty, cupy.zeros, cupy.asarray = empty, zeros, asarray
        cupy.uint8, cupy.uint32, cupy.uint64 = np.uint8, np.uint32, np.uint64
        cupy.get_default_memory_pool = lambda: pool
        cupy.get_default_pinned_memory_pool = lambda: pinned_pool
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
        # Forget what an earlier test probed, compiled or marked dead, and its device threads.
        from dragon_gpu.engines.gpu import _device, _kernels

        try:
            from dragon_gpu.engines.gpu import _context
        except ImportError:  # an engine without device threads
            pass
        else:
            _context.forget()
        monkeypatch.setattr(_device, "_probed", {})
        monkeypatch.setattr(_kernels, "_modules", {})
        monkeypatch.setattr(_kernels, "_functions", {})


class Stream:
    """A queue of operations run in order, as late as possible (see the module docstring)."""

    def __init__(self, gpu: FakeGpu):
        gpu.check_alive()
        self.gpu = gpu
        self.device = gpu.device
        self.ptr = next(gpu._ids)
        gpu._streams[self.ptr] = self
        self.ops: deque = deque()
        self.queued = 0
        self.done = 0
        self._lock = threading.RLock()

    def enqueue(self, op) -> None:
        self.gpu.check_alive(self.device)
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
        self.gpu.check_alive(self.device)
        self.run_until(self.queued)

    def __del__(self):
        self.gpu.check_alive(self.device)  # cudaStreamDestroy on a dead context

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

    def __init__(self, gpu: FakeGpu, shape, dtype, fill, view_of=None, offset=0):
        self.gpu = gpu
        self.device = gpu.device
        if view_of is not None:  # a slice: shares its parent's memory and accounting
            self.host, self.nbytes, self._view_of = view_of.host[offset:], 0, view_of
            self.dtype, self.size = self.host.dtype, self.host.size
            self.data = types.SimpleNamespace(ptr=self.host.ctypes.data)
            self.flags = types.SimpleNamespace(c_contiguous=self.host.flags.c_contiguous)
            self.nbytes = self.host.nbytes
            self._owner = False
            return
        gpu.check_alive()
        self._owner = True
        self.host = np.empty(shape, dtype=dtype)
        self.dtype, self.size = self.host.dtype, self.host.size
        self.flags = types.SimpleNamespace(c_contiguous=True)
        nbytes = self.host.nbytes
        with gpu._lock:
            limit = gpu.device_memory
            held = gpu.allocated[self.device] + gpu.cached[self.device]
            if limit is not None and held + nbytes > limit:
                raise OutOfMemoryError(f"out of memory allocating {nbytes} bytes")
            gpu.allocated[self.device] += nbytes
            gpu.largest_allocation = max(gpu.largest_allocation, nbytes)
        self.host.view(np.uint8).reshape(-1)[:] = 0x5A
        self.nbytes = nbytes
        self.data = types.SimpleNamespace(ptr=self.host.ctypes.data)

    def __del__(self):
        if not self._owner:
            return
        try:
            with self.gpu._lock:
                self.gpu.allocated[self.device] -= self.nbytes
                self.gpu.cached[self.device] += self.nbytes
        except Exception:
            pass

    def __getitem__(self, key):
        if not isinstance(key, slice) or key.step not in (None, 1) or key.stop is not None:
            raise NotImplementedError("the fake slices only as a[start:]")
        return FakeArray(self.gpu, None, None, None, view_of=self, offset=key.start or 0)

    def get(self, stream=None):
        self.gpu.check_alive(self.device)
        self.gpu.current_stream().synchronize()
        return self.host.copy()


class Kernel:
    def __init__(self, gpu: FakeGpu, lib, name: str):
        self.gpu, self.lib, self.name = gpu, lib, name

    def __call__(self, grid, block, args, shared_mem=0):
        gpu = self.gpu
        device = gpu.device
        gpu.check_alive()
        pointers = [a.data.ptr if isinstance(a, FakeArray) else a for a in args]
        if self.name != "probe":
            rows = int(args[2]) if isinstance(args[2], (int, np.integer)) else -1
            gpu.launches.append((device, self.name, rows))
        fail = gpu.fail_launch == self.name

        def run():
            if fail:
                gpu.dead.add(device)  # sticky, as on a GPU: the context is gone
                raise CUDARuntimeError(700, "cudaErrorIllegalAddress: an illegal memory access "
                                            "was encountered\n(more detail)")
            emu.launch(self.lib, self.name, int(grid[0]), int(block[0]), pointers)
            with gpu._lock:
                gpu.kernels_run += 1

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
