"""The GPU decode path end to end on fake devices: the fake CuPy runs the real kernels as C++,
the fake nvCOMP inflates with the CPU codecs on the codec's (lazy) stream, and every layout
must give exactly the CPU engine's counts; damage is the readers' one-line error, exit 2."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from dragon_gpu.cli import app
from dragon_gpu.errors import CorruptInputError, UsageError
from dragon_gpu.pipeline import detect
from tests.helpers import cuda_emulation as emu
from tests.helpers.fake_cupy import FakeGpu
from tests.helpers.gpu_decode_cases import CASES, CPU_ONLY


@pytest.fixture(scope="session")
def kernel_workdir(tmp_path_factory):
    if emu.compiler() is None:
        pytest.skip("no C++ compiler to emulate the kernels on the CPU")
    return tmp_path_factory.mktemp("fake-gpu-decode")


@pytest.fixture(params=["lazy", "eager-kernels"])
def fake_gpu(request, kernel_workdir, monkeypatch):
    gpu = FakeGpu(kernel_workdir, devices=2, eager_kernels=request.param == "eager-kernels")
    gpu.install(monkeypatch)
    return gpu


def _pair(tmp_path, name, other=None):
    suffix = ".h5" if name.startswith("h5") else ".tif"
    body = tmp_path / f"body-{name}{suffix}"
    other = other or name
    dsuffix = ".h5" if other.startswith("h5") else ".tif"
    dye = tmp_path / f"dye-{other}{dsuffix}"
    writers = {**CASES, **CPU_ONLY}
    writers[name](body, np.random.default_rng(1))
    writers[other](dye, np.random.default_rng(2))
    return body, dye


def _counts(result):
    return result.counts.body, result.counts.dye, result.counts.dye_in_body


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_layout_counts_as_the_cpu_engine(fake_gpu, tmp_path, name):
    body, dye = _pair(tmp_path, name)
    want = _counts(detect(body, dye, device="cpu", cutoff="0.5"))
    for device, block_rows in (("0", 5), ("0", None), ("0,1", 8)):
        got = detect(body, dye, device=device, decode="gpu", block_rows=block_rows, cutoff="0.5")
        assert _counts(got) == want, (device, block_rows)
        assert got.decode == {"body": "nvcomp", "dye": "nvcomp"}
        assert got.to_dict()["decode"] == got.decode
    assert fake_gpu.decodes  # nvCOMP really inflated
    names = {k for _, k, _ in fake_gpu.launches}
    assert "assemble_rows" in names


def test_mixed_pair_keeps_lzw_on_the_cpu(fake_gpu, tmp_path):
    body, dye = _pair(tmp_path, "tiff-u8-deflate-predictor", "tiff-u8-lzw")
    want = _counts(detect(body, dye, device="cpu"))
    got = detect(body, dye, device="0", block_rows=7)
    assert _counts(got) == want
    assert got.decode == {"body": "nvcomp", "dye": "cpu"}
    with pytest.raises(UsageError, match="lzw is decoded on the CPU"):
        detect(body, dye, device="0", decode="gpu")


def test_decode_cpu_is_todays_path(fake_gpu, tmp_path):
    body, dye = _pair(tmp_path, "h5-u8-gzip")
    got = detect(body, dye, device="0", decode="cpu")
    assert got.decode == {"body": "cpu", "dye": "cpu"}
    assert not fake_gpu.decodes
    assert _counts(got) == _counts(detect(body, dye, device="cpu"))


def test_without_nvcomp_auto_decodes_on_the_cpu(kernel_workdir, monkeypatch, tmp_path):
    gpu = FakeGpu(kernel_workdir, devices=1, nvcomp=False)
    gpu.install(monkeypatch)
    import sys

    monkeypatch.setitem(sys.modules, "nvidia", None)  # as if nvCOMP were not installed
    body, dye = _pair(tmp_path, "tiff-u8-deflate-strips")
    assert detect(body, dye, device="0").decode == {"body": "cpu", "dye": "cpu"}
    with pytest.raises(UsageError, match="nvCOMP is not installed"):
        detect(body, dye, device="0", decode="gpu")


def test_decode_gpu_without_a_gpu_is_exit_2(tmp_path):
    body, dye = _pair(tmp_path, "tiff-u8-deflate-strips")
    run = CliRunner().invoke(app, ["detect", str(body), str(dye), "--device", "cpu",
                                   "--decode", "gpu", "--json", "-q"])
    assert run.exit_code == 2
    assert "--decode gpu needs a usable GPU" in run.output
    run = CliRunner().invoke(app, ["detect", str(body), str(dye), "--decode", "fast", "-q"])
    assert run.exit_code == 2 and "--decode: expected auto, cpu or gpu" in run.output
    run = CliRunner().invoke(app, ["detect", str(body), str(dye), "--device", "cpu", "--json",
                                   "-q"])
    assert json.loads(run.stdout)["decode"] == {"body": "cpu", "dye": "cpu"}


def _flip(path, strip: int, at: int):
    with tifffile.TiffFile(path) as tif:
        offset = tif.pages[0].dataoffsets[strip]
        count = tif.pages[0].databytecounts[strip]
    raw = bytearray(path.read_bytes())
    raw[offset + (at if at >= 0 else count + at)] ^= 0xFF
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("where, problem", [
    (-1, "Adler-32"),                 # the trailer
    (0, "zlib header"),               # the header
    (12, "cannot be decoded"),        # the deflate body
])
def test_damaged_deflate_is_the_readers_error(fake_gpu, tmp_path, where, problem):
    body, dye = _pair(tmp_path, "tiff-u8-deflate-strips")
    _flip(body, 3, where)
    with pytest.raises(CorruptInputError) as cpu:
        detect(body, dye, device="cpu")
    assert "segment 3 cannot be decoded" in str(cpu.value)
    with pytest.raises(CorruptInputError, match=problem) as gpu:
        detect(body, dye, device="0", decode="gpu")
    assert str(body) in str(gpu.value) and "\n" not in str(gpu.value)
    run = CliRunner().invoke(app, ["detect", str(body), str(dye), "--device", "0",
                                   "--decode", "gpu", "-q"])
    assert run.exit_code == 2, run.output
    assert "cannot be decoded" in run.output and "Traceback" not in run.output


def test_damaged_lz4_chunk_size_is_an_error(fake_gpu, tmp_path):
    import h5py

    body, dye = _pair(tmp_path, "h5-u8-lz4")
    with h5py.File(body, "r") as f:
        info = f["image"].id.get_chunk_info(2)
    raw = bytearray(body.read_bytes())
    raw[info.byte_offset + 7] ^= 0x01  # the total size in the LZ4 filter's header
    body.write_bytes(bytes(raw))
    with pytest.raises(CorruptInputError, match=r"chunk at row 0, column 32 of '/image' cannot "
                                                r"be decoded \(LZ4 header declares"):
        detect(body, dye, device="0", decode="gpu")


def test_compressed_ring_stays_within_memory(fake_gpu, tmp_path):
    """Stored deflate (level 0): compressed bytes exceed the decoded ones; blocks are cut until
    the pinned rings fit half the budget, and the counts stay exact."""
    from dragon_gpu.engines.gpu import CudaEngine
    from dragon_gpu.engines.gpu.decode import prepare
    from dragon_gpu.io import open_mask
    from dragon_gpu.model import RowRange
    from dragon_gpu.pipeline import DetectOptions, encodings

    body, dye = _pair(tmp_path, "tiff-u8-deflate-stored")
    want = _counts(detect(body, dye, device="cpu"))
    with open_mask(body) as b, open_mask(dye) as d:
        memory = 4 * 3 * (10 * 45 + 64)  # rings of 3 blocks of ~10 rows of both inputs, x2
        engine, decode = prepare(CudaEngine([0]), (b, d), (body, dye), "gpu", "nvcomp", memory)
        blocks = [RowRange(0, 37)]
        assert engine.ring_nbytes(blocks, (b, d)) > memory // 2  # one block would not fit
        fitted = engine.fit_ring(blocks, (b, d))
        assert engine.ring_nbytes(fitted, (b, d)) <= memory // 2
        assert sum(r.rows for r in fitted) == 37
        be, de = encodings(b, d, DetectOptions())
        fake_gpu.pinned_peak = fake_gpu.pinned
        got = engine.count_pair(b, be, d, de, blocks)
    assert (got.body, got.dye, got.dye_in_body) == want
    # what was really pinned: the compressed rings of both inputs, within half the budget
    assert 0 < fake_gpu.pinned_peak <= memory // 2


def test_dali_without_dali_is_exit_2_and_auto_falls_back(fake_gpu, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "nvidia.dali", None)  # not installed here
    body, dye = _pair(tmp_path, "h5-u8-lz4")
    with pytest.raises(UsageError, match="DALI is not installed"):
        detect(body, dye, device="0", decode="gpu", gpu_decoder="dali")
    assert detect(body, dye, device="0", gpu_decoder="dali").decode == {"body": "cpu",
                                                                        "dye": "cpu"}
    body2, dye2 = _pair(tmp_path, "tiff-u8-deflate-strips")
    with pytest.raises(UsageError, match="dali inflates LZ4 only"):
        detect(body2, dye2, device="0", decode="gpu", gpu_decoder="dali")


def test_dali_graph_wiring():
    """The DALI graph, with stand-ins for ``fn`` and ``types`` (DALI itself needs a GPU)."""
    import types as pytypes

    from dragon_gpu.engines.gpu.decode._dali import inflate_graph

    calls = []

    def external_source(**kw):
        calls.append(("external_source", kw))
        return kw["name"]

    def inflate(data, **kw):
        calls.append(("inflate", data, kw))
        return "decoded"

    fn = pytypes.SimpleNamespace(external_source=external_source,
                                 decoders=pytypes.SimpleNamespace(inflate=inflate))
    samples, shapes = object(), object()
    assert inflate_graph(fn, pytypes.SimpleNamespace(UINT8="u8"), samples, shapes) == "decoded"
    assert calls == [
        ("external_source", {"source": samples, "device": "gpu", "batch": True, "no_copy": True,
                             "name": "compressed"}),
        ("external_source", {"source": shapes, "device": "cpu", "batch": True, "name": "sizes"}),
        ("inflate", "compressed", {"shape": "sizes", "algorithm": "LZ4", "dtype": "u8"}),
    ]


def test_dali_graph_builds_where_dali_imports():
    """With DALI installed (``.[dali]``) the real graph builds without a GPU; running it needs
    one (test_gpu_decode_real.py)."""
    pytest.importorskip("nvidia.dali", reason="nvidia-dali is not installed")
    from nvidia.dali import fn, pipeline_def, types

    from dragon_gpu.engines.gpu.decode._dali import inflate_graph

    @pipeline_def(batch_size=4, num_threads=1, device_id=0, prefetch_queue_depth=1)
    def pipe():
        return inflate_graph(fn, types, lambda: None, lambda: None)

    p = pipe()
    p._build_graph()  # the graph only: no CUDA needed
    ops = {op.name: op for op in p._ops}
    assert {type(op._op).__name__ for op in ops.values()} == {"ExternalSource", "Inflate"}
    inflate = next(op for op in ops.values() if type(op._op).__name__ == "Inflate")
    spec = inflate.spec
    assert spec.OutputDevice(0) == "gpu"
    # compressed blocks come in on the GPU, their decoded sizes as a CPU argument input
    assert [(spec.InputName(i), spec.InputDevice(i)) for i in range(spec.NumInput())] == [
        ("compressed", "gpu"), ("sizes", "cpu")]
    assert "LZ4" in repr(spec)


def test_nvcomp_without_a_size_config_parses_the_streams(monkeypatch):
    """Where nvCOMP refuses a decompression config built from sizes, decode lets it parse."""
    import sys
    import types as pytypes

    from dragon_gpu.engines.gpu.decode._nvcomp import BatchDecoder

    calls = []

    class Codec:
        def __init__(self, **kw):
            assert kw["bitstream_kind"] == "RAW" and kw["algorithm"] == "Zstd"

        def compression_config(self, sizes):
            return sizes

        def decompression_config(self, config):
            raise RuntimeError("RAW decode cannot be configured from sizes")

        def decode(self, srcs, out=None, decompression_config=None):
            calls.append(decompression_config)
            return "handle"

    nv = pytypes.SimpleNamespace(Codec=Codec, BitstreamKind=pytypes.SimpleNamespace(RAW="RAW"),
                                 as_arrays=lambda buf, offsets, sizes, cuda_stream: sizes)
    monkeypatch.setitem(sys.modules, "nvidia", pytypes.SimpleNamespace(nvcomp=nv))
    monkeypatch.setitem(sys.modules, "nvidia.nvcomp", nv)
    decoder = BatchDecoder("zstd", 0, 7)
    for _ in range(2):
        assert decoder.decode(None, [0], [5], None, [0], [9]) == "handle"
    assert calls == [None, None]
