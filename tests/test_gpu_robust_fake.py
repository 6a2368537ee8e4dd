"""The CUDA engine when things go wrong, on the stand-in for CuPy (no GPU needed).

Each test models one way a real GPU host fails (a kernel that does not compile, a sticky CUDA
error, a pinned pool that keeps memory, a second GPU, a misaligned buffer) and checks what the
user sees: one clear line, the CPU fallback or exit 2, memory within what was planned.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from dragon_gpu.engines import select_engine
from dragon_gpu.engines.gpu import CudaEngine, KernelLauncher, probe_device
from dragon_gpu.errors import GpuError, GpuUnavailableError
from dragon_gpu.model import RowRange
from tests.helpers import cuda_emulation as emu, python_env
from tests.helpers.engine_cases import ArrayReader, make_encoding, numpy_counts, random_block
from tests.helpers.fake_cupy import FakeGpu



@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    if emu.compiler() is None:
        pytest.skip("no C++ compiler to emulate the kernels on the CPU")
    return tmp_path_factory.mktemp("fake-gpu-robust")


@pytest.fixture
def gpu(workdir, monkeypatch):
    fake = FakeGpu(workdir, devices=2)
    fake.install(monkeypatch)
    yield fake
    fake.dead.clear()


def blocks_of(height, rows):
    return [RowRange(r, min(height, r + rows)) for r in range(0, height, rows)]


def count(engine, body, body_enc, dye, dye_enc, rows, progress=None):
    c = engine.count_pair(ArrayReader(body, body_enc), body_enc, ArrayReader(dye, dye_enc),
                          dye_enc, blocks_of(body.shape[0], rows), progress)
    return c.body, c.dye, c.dye_in_body


# -- the probe loads every kernel ------------------------------------------------------------------
def test_a_counting_kernel_that_does_not_compile_makes_the_gpu_unusable(gpu):
    gpu.fail_compile = "count_packed_plane_u16"
    why = probe_device(0)
    assert why.startswith("kernel count_packed_plane_u16 (mixed.cu) does not load: "
                          "CompileException: kern.cu(12): error"), why
    lines = []
    engine = select_engine("auto", warn=lines.append)
    assert engine.name == "cpu"
    assert lines == [f"dragon-gpu: warning: GPU 0 not usable ({why}); using the CPU"]
    with pytest.raises(GpuUnavailableError, match=r"^GPU 0 not usable \(kernel count_packed_pl"
                                                  r"ane_u16 .* and --require-gpu was given$"):
        select_engine("auto", require_gpu=True)


def test_the_probe_compiles_each_file_once(gpu, monkeypatch):
    from dragon_gpu.engines.gpu import _kernels

    built = []
    real = _kernels._load
    monkeypatch.setattr(_kernels, "_load", lambda *a: built.append(a) or real(*a))
    assert probe_device(0) is None
    assert {(d, f) for d, f, _ in built} == {(0, f) for f in _kernels.KERNEL_FILES}
    assert len(_kernels._modules) == len(_kernels.KERNEL_FILES)
    rng = np.random.default_rng(1)
    body, body_enc = random_block(rng, "u16", 9, 21)
    dye, dye_enc = random_block(rng, "packed", 9, 21)
    before = len(built)
    count(CudaEngine([0]), body, body_enc, dye, dye_enc, 4)
    assert len(built) == before  # the counting kernel was loaded by the probe


def test_auto_is_silent_only_when_there_is_no_gpu(gpu):
    gpu.devices = 0
    lines = []
    assert select_engine("auto", warn=lines.append).name == "cpu"
    assert lines == [] and probe_device(0) == "no CUDA device"


# -- CuPy's kernel cache ---------------------------------------------------------------------------
def test_an_unwritable_kernel_cache_is_the_reason(gpu, tmp_path, monkeypatch):
    from dragon_gpu.engines.gpu._device import cache_problem

    # A regular file where the folder would go: not writable even for root (as --read-only).
    (tmp_path / "file").write_text("")
    folder = tmp_path / "file" / "kernel_cache"
    monkeypatch.setenv("CUPY_CACHE_DIR", str(folder))
    assert cache_problem() == (f"CuPy's kernel cache {folder} is not writable (set "
                               "CUPY_CACHE_DIR to a writable folder)")
    lines = []
    assert select_engine("auto", warn=lines.append).name == "cpu"
    why = cache_problem()
    assert lines == [f"dragon-gpu: warning: GPU 0 not usable ({why}); using the CPU"]
    monkeypatch.setenv("CUPY_CACHE_DIR", str(tmp_path / "new" / "cache"))
    assert cache_problem() is None  # a folder that can be created is fine


# -- sticky errors ---------------------------------------------------------------------------------
def test_a_sticky_error_marks_the_device_dead(gpu):
    rng = np.random.default_rng(2)
    body, body_enc = random_block(rng, "packed", 8, 64)
    dye, dye_enc = random_block(rng, "packed", 8, 64)
    engine = CudaEngine([0])
    gpu.fail_launch = "count_packed_packed"
    with pytest.raises(GpuError, match="^GPU 0 failed: CUDARuntimeError: cudaErrorIllegalAddr"):
        count(engine, body, body_enc, dye, dye_enc, 3)
    gpu.fail_launch = None
    assert probe_device(0) == ("GPU 0 failed earlier in this process: GPU 0 failed: "
                               "CUDARuntimeError: cudaErrorIllegalAddress: an illegal memory "
                               "access was encountered")
    lines = []
    assert select_engine("0", warn=lines.append).name == "cpu"
    assert lines[0].startswith("dragon-gpu: warning: GPU 0 not usable (GPU 0 failed earlier")
    assert select_engine("1").name == "cuda:1"  # the other GPU is fine


SCRIPT = """
import gc, sys
import pytest
from tests.helpers.fake_cupy import FakeGpu
gpu = FakeGpu({workdir!r}, devices=2, fail_launch="count_plane_plane_u8_u8")
gpu.install(pytest.MonkeyPatch())
from dragon_gpu.errors import DragonError
from dragon_gpu.pipeline import detect
for attempt in (1, 2):  # as a batch worker: a second pair in the same process
    try:
        print(attempt, detect(sys.argv[1], sys.argv[2], device="0", block_rows=8).backend)
    except DragonError as exc:
        print(attempt, "error:", exc)
    gc.collect()
"""


def test_a_sticky_error_is_one_line_without_destructor_noise(workdir, tmp_path):
    import tifffile

    rng = np.random.default_rng(3)
    for name in ("body", "dye"):
        tifffile.imwrite(tmp_path / f"{name}.tif",
                         rng.integers(0, 256, size=(40, 50), dtype=np.uint8), rowsperstrip=8)
    script = tmp_path / "run.py"
    script.write_text(SCRIPT.format(workdir=str(workdir)))
    run = subprocess.run([sys.executable, str(script), str(tmp_path / "body.tif"),
                          str(tmp_path / "dye.tif")], capture_output=True, text=True, timeout=300,
                         env=python_env())
    assert run.returncode == 0, run.stderr
    failure = ("GPU 0 failed: CUDARuntimeError: cudaErrorIllegalAddress: an illegal memory access "
               "was encountered")
    assert run.stdout.splitlines() == [f"1 error: {failure}", "2 cpu"]
    # The second pair is refused the dead GPU with one line, and no destructor speaks.
    assert run.stderr.splitlines() == [
        f"dragon-gpu: warning: GPU 0 not usable (GPU 0 failed earlier in this process: "
        f"{failure}); using the CPU"], run.stderr


# -- pinned memory ---------------------------------------------------------------------------------
def test_the_pinned_ring_is_exactly_planned_and_freed_after_the_pair(gpu):
    rng = np.random.default_rng(4)
    height, width = 30, 50
    body, body_enc = random_block(rng, "u16", height, width)
    dye, dye_enc = random_block(rng, "u8", height, width)
    engine = CudaEngine([0], prefetch_depth=2)
    got = count(engine, body, body_enc, dye, dye_enc, 7)
    assert got == numpy_counts(body, body_enc, dye, dye_enc)
    # depth + 1 = 3 buffers of 7 rows of each input: 3 * 7 * (100 + 50) bytes, nothing more.
    assert gpu.pinned_peak == 3 * 7 * (2 * width + width)
    assert gpu.pinned == 0 and gpu.pinned_pool_held == 0


def test_pinned_memory_follows_the_memory_budget(gpu, tmp_path):
    import tifffile

    from dragon_gpu.pipeline import BLOCK_SHARE, detect

    rng = np.random.default_rng(5)
    body = rng.integers(0, 256, size=(200, 300), dtype=np.uint8)
    dye = rng.integers(0, 256, size=(200, 300), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "b.tif", body, rowsperstrip=1)
    tifffile.imwrite(tmp_path / "d.tif", dye, rowsperstrip=1)
    memory = 64 * 1024
    result = detect(tmp_path / "b.tif", tmp_path / "d.tif", device="0", memory=memory)
    assert result.backend == "cuda:0"
    assert result.counts.body == int((body < 128).sum())
    # The ring holds three block pairs, each at most the budget's block share.
    assert 0 < gpu.pinned_peak <= 3 * (memory // BLOCK_SHARE)
    assert gpu.pinned == 0


def test_out_of_memory_retry_frees_the_failed_attempt_first(gpu):
    rng = np.random.default_rng(6)
    height, width = 40, 100
    body, body_enc = random_block(rng, "u16", height, width)
    dye, dye_enc = random_block(rng, "u8", height, width)
    # 40 rows: the counters (24 bytes) and both device slots (2 x 12000) fit, then the pinned
    # ring (3 x 12000) does not. 20 rows need 24 + 2 x 6000 on the device: they fit only if the
    # failed attempt's slots were dropped before the pool was emptied.
    gpu.device_memory = 24 + 2 * 12000 + 100
    gpu.pinned_memory = 20000
    got = count(CudaEngine([0]), body, body_enc, dye, dye_enc, height)
    assert got == numpy_counts(body, body_enc, dye, dye_enc)
    assert max(r for _, _, r in gpu.launches) == 20
    assert gpu.allocated[0] == 0 and gpu.pinned == 0


# -- only the named devices ------------------------------------------------------------------------
def test_device_1_never_touches_device_0(gpu):
    rng = np.random.default_rng(7)
    body, body_enc = random_block(rng, "u8", 25, 33)
    dye, dye_enc = random_block(rng, "packed", 25, 33)
    engine = select_engine("1", require_gpu=True)
    assert count(engine, body, body_enc, dye, dye_enc, 6) == numpy_counts(body, body_enc, dye,
                                                                           dye_enc)
    assert gpu.touched == {1}
    assert {d for d, _, _ in gpu.launches} == {1}


# -- the launcher's checks -------------------------------------------------------------------------
def test_launcher_refuses_bad_buffers(gpu):
    import cupy

    from dragon_gpu.engines.gpu import _context

    enc = make_encoding("u16", 64, 100, True)

    def check():
        launch = KernelLauncher(0, enc, enc)
        good = cupy.empty(8 * 128, dtype=cupy.uint8)
        counters = cupy.zeros(3, dtype=cupy.uint64)
        with pytest.raises(ValueError, match=r"^body buffer at 0x[0-9a-f]+ is not 16-byte al"):
            launch(good[2:], good, 8, counters)
        with pytest.raises(ValueError, match="^dye buffer holds 512 bytes, fewer than the 1024 "):
            launch(good, cupy.empty(512, dtype=cupy.uint8), 8, counters)
        with pytest.raises(ValueError, match="^counters buffer holds 16 bytes"):
            launch(good, good, 8, cupy.zeros(2, dtype=cupy.uint64))
        strided = cupy.empty(8 * 128, dtype=cupy.uint8)
        strided.flags.c_contiguous = False
        with pytest.raises(ValueError, match="^body buffer is not C-contiguous$"):
            launch(strided, good, 8, counters)
        launch(good, good, 8, counters)  # and a good launch still runs
        assert gpu.launches[-1] == (0, "count_plane_plane_u16_u16", 8)

    _context.on_device(0, check)


# -- small things ----------------------------------------------------------------------------------
def test_progress_advances_when_a_kernel_has_run(gpu):
    rng = np.random.default_rng(8)
    body, body_enc = random_block(rng, "u8", 30, 40)
    dye, dye_enc = random_block(rng, "u8", 30, 40)
    seen = []

    def progress(rows):
        seen.append((rows, gpu.kernels_run))

    count(CudaEngine([0]), body, body_enc, dye, dye_enc, 5, progress=progress)
    assert sum(r for r, _ in seen) == 30
    reported = 0
    for rows, kernels in seen:
        reported += rows
        assert reported <= 5 * kernels  # never ahead of the kernels that have finished


def test_no_device_is_named_as_such(gpu, monkeypatch):
    import cupy

    from tests.helpers.fake_cupy import CUDARuntimeError

    def no_device():
        raise CUDARuntimeError(100, "cudaErrorNoDevice: no CUDA-capable device is detected")

    monkeypatch.setattr(cupy.cuda.runtime, "getDeviceCount", no_device)
    assert probe_device(0) == "no CUDA device"
    lines = []
    assert select_engine("auto", warn=lines.append).name == "cpu" and lines == []
