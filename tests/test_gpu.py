"""The CUDA engine on a real GPU: bit-for-bit parity with the CPU engine and with plain NumPy.

Every test here is marked ``gpu`` and skips itself where GPU 0 is not usable (no CuPy, no
driver, no device); ``pytest -m gpu`` runs just these on a GPU machine.
"""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from dragon_gpu.engines.cpu import CpuEngine, count_block
from dragon_gpu.engines.gpu import CudaEngine, KernelLauncher, device_count, has_gpu
from dragon_gpu.model import Counts, RowRange
from tests.helpers.engine_cases import PAIRS, WIDTHS, ArrayReader, numpy_counts, random_block

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not has_gpu(0), reason="GPU 0 is not usable (no CuPy, driver "
                                                        "or device)")]
two_gpus = pytest.mark.skipif(device_count() < 2 or not has_gpu(1), reason="needs 2 GPUs")


def blocks_of(height: int, rows: int) -> list[RowRange]:
    return [RowRange(r, min(height, r + rows)) for r in range(0, height, rows)]


def engine_counts(engine, body, body_enc, dye, dye_enc, block_rows) -> tuple[int, int, int]:
    c = engine.count_pair(ArrayReader(body, body_enc), body_enc, ArrayReader(dye, dye_enc),
                          dye_enc, blocks_of(body.shape[0], block_rows))
    return c.body, c.dye, c.dye_in_body


def reference_counts(body, body_enc, dye, dye_enc, block_rows) -> tuple[int, int, int]:
    """The CPU engine's pure per-block function, summed over the same blocks."""
    total = Counts()
    for b in blocks_of(body.shape[0], block_rows):
        total = total + count_block(body[b.row_start:b.row_stop], body_enc,
                                    dye[b.row_start:b.row_stop], dye_enc)
    return total.body, total.dye, total.dye_in_body


@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: f"{p[0]}-{p[1]}")
def test_parity_odd_widths_and_blocks(pair):
    rng = np.random.default_rng(sum(map(ord, "".join(pair))) + 100)
    engine = CudaEngine([0])
    height = 29
    for width in WIDTHS:
        body, body_enc = random_block(rng, pair[0], height, width)
        dye, dye_enc = random_block(rng, pair[1], height, width)
        want = numpy_counts(body, body_enc, dye, dye_enc)
        for block_rows in (1, 7, height, height + 3):
            assert reference_counts(body, body_enc, dye, dye_enc, block_rows) == want
            assert engine_counts(engine, body, body_enc, dye, dye_enc, block_rows) == want, (
                width, block_rows)


@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: f"{p[0]}-{p[1]}")
def test_parity_many_thread_blocks(pair):
    """Blocks big enough for full grids, so the warp and block reductions all take part."""
    rng = np.random.default_rng(sum(map(ord, "".join(pair))) + 200)
    height, width = 1500, 3001
    body, body_enc = random_block(rng, pair[0], height, width)
    dye, dye_enc = random_block(rng, pair[1], height, width)
    want = numpy_counts(body, body_enc, dye, dye_enc)
    assert engine_counts(CudaEngine([0]), body, body_enc, dye, dye_enc, 97) == want
    cpu = CpuEngine().count_pair(ArrayReader(body, body_enc), body_enc, ArrayReader(dye, dye_enc),
                                 dye_enc, blocks_of(height, 97))
    assert (cpu.body, cpu.dye, cpu.dye_in_body) == want


@pytest.mark.parametrize("pair", [("packed", "packed"), ("u8", "u16"), ("u16", "packed")],
                         ids=lambda p: f"{p[0]}-{p[1]}")
def test_counters_pass_2_to_the_32(pair):
    """One block counted again and again into the same counters, never reset: exact multiples."""
    import cupy

    rng = np.random.default_rng(300)
    rows, width = 2048, 4099
    body, body_enc = random_block(rng, pair[0], rows, width, high=True, threshold=64)
    dye, dye_enc = random_block(rng, pair[1], rows, width, high=True, threshold=64)
    once = numpy_counts(body, body_enc, dye, dye_enc)
    times = (1 << 32) // once[2] + 1  # every counter ends past 2**32
    with cupy.cuda.Device(0):
        launch = KernelLauncher(0, body_enc, dye_enc)
        b = cupy.asarray(body.reshape(-1).view(np.uint8))
        d = cupy.asarray(dye.reshape(-1).view(np.uint8))
        counters = cupy.zeros(3, dtype=cupy.uint64)
        for _ in range(times):
            launch(b, d, rows, counters)
        got = [int(v) for v in counters.get()]
    assert got == [times * once[0], times * once[1], times * once[2]]
    assert min(got) > 1 << 32


def test_out_of_memory_retries_with_smaller_blocks():
    import cupy

    rng = np.random.default_rng(400)
    height, width = 600, 5000
    body, body_enc = random_block(rng, "u16", height, width)
    dye, dye_enc = random_block(rng, "u8", height, width)
    want = numpy_counts(body, body_enc, dye, dye_enc)
    pool = cupy.get_default_memory_pool()
    pool.free_all_blocks()
    with cupy.cuda.Device(0):
        pool.set_limit(size=4 << 20)  # two slots of 600 rows need 18 MB; 4 MiB fits ~100 rows
        try:
            got = engine_counts(CudaEngine([0]), body, body_enc, dye, dye_enc, height)
        finally:
            pool.set_limit(size=0)
    assert got == want


@two_gpus
def test_two_gpus_equal_one():
    rng = np.random.default_rng(500)
    height, width = 1001, 777
    body, body_enc = random_block(rng, "packed", height, width)
    dye, dye_enc = random_block(rng, "u16", height, width)
    want = numpy_counts(body, body_enc, dye, dye_enc)
    assert engine_counts(CudaEngine([0]), body, body_enc, dye, dye_enc, 64) == want
    assert engine_counts(CudaEngine([0, 1]), body, body_enc, dye, dye_enc, 64) == want
    assert engine_counts(CudaEngine([1, 0]), body, body_enc, dye, dye_enc, height) == want


@pytest.mark.parametrize("fmt", ["tiff", "hdf5"])
def test_detect_files_gpu_equals_cpu(tmp_path, fmt):
    import h5py

    from dragon_gpu.pipeline import detect

    rng = np.random.default_rng(600)
    body = rng.integers(0, 65536, size=(257, 1003), dtype=np.uint16)
    dye = rng.integers(0, 2, size=(257, 1003)).astype(bool)
    if fmt == "tiff":
        paths = tmp_path / "body.tif", tmp_path / "dye.tif"
        tifffile.imwrite(paths[0], body, rowsperstrip=16, compression="zlib")
        tifffile.imwrite(paths[1], dye, photometric="minisblack", rowsperstrip=5)
    else:
        paths = tmp_path / "body.h5", tmp_path / "dye.h5"
        with h5py.File(paths[0], "w") as f:
            f.create_dataset("mask", data=body, chunks=(32, 256), compression="gzip")
        with h5py.File(paths[1], "w") as f:
            f.create_dataset("mask", data=dye)
    results = {device: detect(*paths, device=device, block_rows=50).to_dict()
               for device in ("cpu", "0")}
    assert results["0"]["backend"] == "cuda:0"
    keys = ("body_pixels", "dye_in_body_pixels", "dye_pixels", "cancer")
    assert {k: results["0"][k] for k in keys} == {k: results["cpu"][k] for k in keys}
    assert results["0"]["body_pixels"] == int((body < 32768).sum())
    assert results["0"]["dye_in_body_pixels"] == int(((body < 32768) & dye).sum())


@pytest.mark.parametrize("kind", ["u8", "u16", "u8-u8"])
def test_histogram_equals_the_cpu_bit_for_bit(kind):
    """The histogram kernel on the GPU (real shared-memory atomics across 256 threads, 8 slices)
    equals bincount and the CPU engine, on a gray block and on a peaky one."""
    rng = np.random.default_rng(len(kind))
    height, width = 517, 1031
    for peaky in (False, True):
        def plane(dtype):
            top = np.iinfo(dtype).max
            if peaky:
                return rng.choice(np.array([0, 1, top], dtype), size=(height, width))
            return rng.integers(0, top, (height, width), dtype=dtype, endpoint=True)
        if kind == "u8-u8":
            arrays = [plane(np.uint8), plane(np.uint8)]
            want = np.bincount((arrays[0].astype(np.int64) << 8 | arrays[1]).ravel(),
                               minlength=65536)
        else:
            dtype = np.uint8 if kind == "u8" else np.uint16
            arrays = [plane(dtype)]
            want = np.bincount(arrays[0].ravel(), minlength=np.iinfo(dtype).max + 1)
        tag = "u8" if arrays[0].dtype == np.uint8 else "u16"
        encs = [random_block(rng, tag, 1, width)[1] for _ in arrays]
        for block_rows in (1, 100, height):
            blocks = blocks_of(height, block_rows)
            gpu = CudaEngine([0]).histogram([ArrayReader(a, e) for a, e in zip(arrays, encs)],
                                            blocks)
            cpu = CpuEngine().histogram([ArrayReader(a, e) for a, e in zip(arrays, encs)],
                                        blocks)
            assert np.array_equal(gpu, want) and np.array_equal(cpu, want), (peaky, block_rows)
