"""The CUDA engine's host code, end to end on a stand-in for CuPy (no GPU needed).

``tests.helpers.fake_cupy`` runs the real kernels (built as C++) behind lazy streams, so these
tests check the engine's rings, events, device split, memory retries and error lines, with counts
compared with plain NumPy. What only a GPU can check (warp shuffles, real concurrency, speed) is in
``test_gpu.py``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from dragon_gpu.engines import select_engine
from dragon_gpu.engines.gpu import CudaEngine, has_gpu, probe_device
from dragon_gpu.errors import CorruptInputError, GpuError, MemoryBudgetError
from dragon_gpu.model import RowRange
from tests.helpers import cuda_emulation as emu
from tests.helpers.engine_cases import PAIRS, ArrayReader, numpy_counts, random_block
from tests.helpers.fake_cupy import FakeGpu


@pytest.fixture(scope="session")
def kernel_workdir(tmp_path_factory):
    if emu.compiler() is None:
        pytest.skip("no C++ compiler to emulate the kernels on the CPU")
    return tmp_path_factory.mktemp("fake-gpu")


@pytest.fixture
def fake_gpu(kernel_workdir, monkeypatch):
    gpu = FakeGpu(kernel_workdir, devices=2)
    gpu.install(monkeypatch)
    yield gpu
    # A test that killed a fake context must not have its leftovers raise in later tests.
    gpu.dead.clear()


@pytest.fixture(params=["lazy", "eager-kernels"])
def any_fake_gpu(request, fake_gpu):
    """Both schedules of the fake streams: work as late, or kernels as early, as allowed."""
    fake_gpu.eager_kernels = request.param == "eager-kernels"
    return fake_gpu


def blocks_of(height: int, rows: int) -> list[RowRange]:
    return [RowRange(r, min(height, r + rows)) for r in range(0, height, rows)]


def count(engine, body, body_enc, dye, dye_enc, block_rows, progress=None):
    c = engine.count_pair(ArrayReader(body, body_enc), body_enc, ArrayReader(dye, dye_enc),
                          dye_enc, blocks_of(body.shape[0], block_rows), progress)
    return c.body, c.dye, c.dye_in_body


def test_probe_runs_a_kernel(fake_gpu):
    assert has_gpu(0) and has_gpu(1)
    assert probe_device(2) == "there is no GPU 2 (2 found)"


def test_select_engine_names_the_devices(fake_gpu):
    assert select_engine("auto").name == "cuda:0"
    assert select_engine("1,0").name == "cuda:1,0"


@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: f"{p[0]}-{p[1]}")
def test_engine_matches_numpy(any_fake_gpu, pair):
    rng = np.random.default_rng(sum(map(ord, "".join(pair))) + 1)
    height, width = 23, 45
    body, body_enc = random_block(rng, pair[0], height, width)
    dye, dye_enc = random_block(rng, pair[1], height, width)
    want = numpy_counts(body, body_enc, dye, dye_enc)
    engine = CudaEngine([0])
    for block_rows in (1, 7, height, height + 3):
        assert count(engine, body, body_enc, dye, dye_enc, block_rows) == want, block_rows


def test_two_devices_equal_one(any_fake_gpu):
    rng = np.random.default_rng(5)
    height, width = 41, 67
    body, body_enc = random_block(rng, "u16", height, width)
    dye, dye_enc = random_block(rng, "packed", height, width)
    want = numpy_counts(body, body_enc, dye, dye_enc)
    done = []
    got = count(CudaEngine([0, 1]), body, body_enc, dye, dye_enc, 5, progress=done.append)
    assert got == want
    assert sum(done) == height
    devices = {device for device, _, _ in any_fake_gpu.launches}
    assert devices == {0, 1}
    assert sum(rows for _, _, rows in any_fake_gpu.launches) == height


def test_two_devices_split_a_single_block(fake_gpu):
    rng = np.random.default_rng(6)
    body, body_enc = random_block(rng, "u8", 9, 30)
    dye, dye_enc = random_block(rng, "u8", 9, 30)
    got = count(CudaEngine([0, 1]), body, body_enc, dye, dye_enc, 9)
    assert got == numpy_counts(body, body_enc, dye, dye_enc)
    assert sorted((d, rows) for d, _, rows in fake_gpu.launches) == [(0, 5), (1, 4)]


def test_every_row_is_read_once(fake_gpu):
    rng = np.random.default_rng(7)
    body, body_enc = random_block(rng, "packed", 30, 20)
    dye, dye_enc = random_block(rng, "u8", 30, 20)
    readers = ArrayReader(body, body_enc), ArrayReader(dye, dye_enc)
    CudaEngine([0, 1]).count_pair(readers[0], body_enc, readers[1], dye_enc, blocks_of(30, 4))
    for reader in readers:
        rows = sorted(r for start, stop in reader.reads for r in range(start, stop))
        assert rows == list(range(30))


def test_blocks_larger_than_the_device_limit_are_cut(fake_gpu):
    rng = np.random.default_rng(8)
    body, body_enc = random_block(rng, "u8", 50, 16)
    dye, dye_enc = random_block(rng, "u8", 50, 16)
    engine = CudaEngine([0], max_block_nbytes=32 * 10)  # 10 rows of both inputs
    assert count(engine, body, body_enc, dye, dye_enc, 50) == numpy_counts(body, body_enc, dye,
                                                                            dye_enc)
    assert [rows for _, _, rows in fake_gpu.launches] == [10] * 5


def test_out_of_memory_retries_with_smaller_blocks(fake_gpu):
    rng = np.random.default_rng(9)
    height, width = 40, 100
    body, body_enc = random_block(rng, "u16", height, width)
    dye, dye_enc = random_block(rng, "u8", height, width)
    # Two slots of (body + dye) rows must fit: 2 * 300 bytes a row; room for 2 x 9 rows.
    fake_gpu.device_memory = 2 * 9 * 300 + 64
    got = count(CudaEngine([0]), body, body_enc, dye, dye_enc, height)
    assert got == numpy_counts(body, body_enc, dye, dye_enc)
    rows = [r for _, _, r in fake_gpu.launches]
    assert sum(rows) == height and max(rows) == 5  # 40 -> 20 -> 10 -> 5 rows a block


def test_out_of_memory_with_one_row_is_a_clear_error(fake_gpu):
    rng = np.random.default_rng(10)
    body, body_enc = random_block(rng, "u8", 4, 1000)
    dye, dye_enc = random_block(rng, "u8", 4, 1000)
    fake_gpu.device_memory = 100
    with pytest.raises(MemoryBudgetError, match="^GPU 0 ran out of memory even with blocks of 1 "
                                                "row$"):
        count(CudaEngine([0]), body, body_enc, dye, dye_enc, 4)


def test_cuda_error_is_one_clear_line(fake_gpu):
    rng = np.random.default_rng(11)
    body, body_enc = random_block(rng, "packed", 8, 64)
    dye, dye_enc = random_block(rng, "packed", 8, 64)
    fake_gpu.fail_launch = "count_packed_packed"
    with pytest.raises(GpuError) as info:
        count(CudaEngine([0]), body, body_enc, dye, dye_enc, 3)
    assert str(info.value) == ("GPU 0 failed: CUDARuntimeError: cudaErrorIllegalAddress: an "
                               "illegal memory access was encountered")


@pytest.mark.parametrize("devices", [[0], [0, 1]])
def test_reader_errors_pass_unchanged(fake_gpu, devices):
    rng = np.random.default_rng(12)
    body, body_enc = random_block(rng, "u8", 20, 10)
    dye, dye_enc = random_block(rng, "u8", 20, 10)

    class Broken(ArrayReader):
        def read_rows(self, row_start, row_stop, out=None):
            if row_start >= 12:
                raise CorruptInputError("segment 3 cannot be decoded", "dye.tif")
            return super().read_rows(row_start, row_stop, out)

    with pytest.raises(CorruptInputError, match="segment 3"):
        CudaEngine(devices).count_pair(ArrayReader(body, body_enc), body_enc,
                                       Broken(dye, dye_enc), dye_enc, blocks_of(20, 4))


def test_detect_and_cli_use_the_gpu(fake_gpu, tmp_path):
    from typer.testing import CliRunner

    from dragon_gpu.cli import app
    from dragon_gpu.pipeline import detect

    rng = np.random.default_rng(13)
    body = rng.integers(0, 256, size=(31, 45), dtype=np.uint8)
    dye = rng.integers(0, 2, size=(31, 45), dtype=np.uint8).astype(bool)
    tifffile.imwrite(tmp_path / "body.tif", body, rowsperstrip=4)
    tifffile.imwrite(tmp_path / "dye.tif", dye, photometric="minisblack", rowsperstrip=8)
    want_body = int((body < 128).sum())
    want_both = int(((body < 128) & dye).sum())
    for device in ("0", "0,1"):
        result = detect(tmp_path / "body.tif", tmp_path / "dye.tif", device=device, block_rows=7)
        assert result.backend == f"cuda:{device}"
        assert (result.counts.body, result.counts.dye_in_body, result.counts.dye) == (
            want_body, want_both, int(dye.sum()))
    run = CliRunner().invoke(app, ["detect", str(tmp_path / "body.tif"),
                                   str(tmp_path / "dye.tif"), "--device", "1", "--json",
                                   "--require-gpu"])
    assert run.exit_code == 0, run.output
    got = json.loads(run.stdout)
    assert got["backend"] == "cuda:1"
    assert (got["body_pixels"], got["dye_in_body_pixels"]) == (want_body, want_both)


# -- histograms ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["u8", "u16", "u8-u8"])
def test_histogram_equals_the_cpu_bit_for_bit(any_fake_gpu, kind):
    """The CUDA engine's histogram (rings, events, slot reuse, sub-blocks) equals the CPU
    engine's and plain bincount, for blocks of every size."""
    from dragon_gpu.engines.cpu import CpuEngine

    rng = np.random.default_rng(len(kind) + 40)
    height, width = 29, 41
    if kind == "u8-u8":
        a, b = (rng.integers(0, 256, (height, width), dtype=np.uint8) for _ in range(2))
        arrays = [a, b]
        want = np.bincount((a.astype(np.int64) << 8 | b).ravel(), minlength=65536)
    else:
        dtype = np.uint8 if kind == "u8" else np.uint16
        a = rng.integers(0, np.iinfo(dtype).max, (height, width), dtype=dtype, endpoint=True)
        arrays = [a]
        want = np.bincount(a.ravel(), minlength=np.iinfo(dtype).max + 1)
    tag = "u8" if arrays[0].dtype == np.uint8 else "u16"
    encs = [random_block(rng, tag, 1, width)[1] for _ in arrays]
    for block_rows in (1, 6, height, height + 2):
        blocks = blocks_of(height, block_rows)
        gpu = CudaEngine([0]).histogram([ArrayReader(x, e) for x, e in zip(arrays, encs)],
                                        blocks)
        cpu = CpuEngine(threads=2).histogram([ArrayReader(x, e) for x, e in zip(arrays, encs)],
                                             blocks)
        assert gpu.dtype == cpu.dtype == np.int64
        assert np.array_equal(gpu, want) and np.array_equal(cpu, want), block_rows
    assert any(name.startswith("histogram_") for _, name, _ in any_fake_gpu.launches)


def test_histogram_is_refused_for_packed_rows(fake_gpu):
    rng = np.random.default_rng(2)
    bits, enc = random_block(rng, "packed", 4, 20)
    with pytest.raises(ValueError, match="no histogram kernel"):
        CudaEngine([0]).histogram([ArrayReader(bits, enc)], blocks_of(4, 2))


def test_detect_with_a_method_on_the_gpu(fake_gpu, tmp_path):
    """otsu on a uint8 pair: one joint-histogram pass on the (fake) GPU, the same result as the
    CPU; on a uint16 body, the histogram kernel and then the counting kernel."""
    from dragon_gpu.pipeline import detect

    rng = np.random.default_rng(21)
    body = np.where(rng.random((40, 37)) < 0.5, rng.integers(20, 60, (40, 37)),
                    rng.integers(150, 230, (40, 37))).astype(np.uint8)
    dye = rng.integers(0, 256, (40, 37), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "body.tif", body, rowsperstrip=4)
    tifffile.imwrite(tmp_path / "dye.tif", dye, rowsperstrip=8)
    tifffile.imwrite(tmp_path / "body16.tif", body.astype(np.uint16) * 257, rowsperstrip=5)
    for name in ("body.tif", "body16.tif"):
        fake_gpu.launches.clear()
        gpu = detect(tmp_path / name, tmp_path / "dye.tif", device="0", threshold="otsu",
                     block_rows=10).to_dict()
        cpu = detect(tmp_path / name, tmp_path / "dye.tif", device="cpu", threshold="otsu",
                     block_rows=10).to_dict()
        keys = ("body_pixels", "dye_in_body_pixels", "dye_pixels", "body_threshold",
                "dye_threshold", "body_rule", "dye_rule")
        assert {k: gpu[k] for k in keys} == {k: cpu[k] for k in keys}
        kernels = {k for _, k, _ in fake_gpu.launches}
        if name == "body.tif":
            assert kernels == {"histogram_u8_u8"}  # no counting pass: the joint one decides
        else:
            assert kernels == {"histogram_u16", "histogram_u8", "count_plane_plane_u16_u8"}


def test_tiled_pairs_count_on_the_gpu_through_rows(fake_gpu, tmp_path):
    """The CUDA engine reads rows of tiled inputs (the CPU engine counts them tile by tile):
    tiles at the image edges and blocks that cut tiles count exactly once."""
    from dragon_gpu.pipeline import detect

    rng = np.random.default_rng(31)
    body = rng.integers(0, 256, size=(77, 101), dtype=np.uint8)
    dye = rng.integers(0, 256, size=(77, 101), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "body.tif", body, tile=(32, 48), compression="zlib")
    tifffile.imwrite(tmp_path / "dye.tif", dye, tile=(32, 48), compression="zlib", predictor=2)
    b, d = body < 128, dye >= 128
    want = (int(b.sum()), int((b & d).sum()), int(d.sum()))
    for device in ("0", "cpu"):
        got = detect(tmp_path / "body.tif", tmp_path / "dye.tif", device=device, block_rows=20)
        assert got.backend == ("cuda:0" if device == "0" else "cpu")
        assert (got.counts.body, got.counts.dye_in_body, got.counts.dye) == want
