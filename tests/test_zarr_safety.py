"""Untrusted Zarr stores are refused cleanly, and stores are read over HTTP from 127.0.0.1."""

from __future__ import annotations

import functools
import gzip
import http.server
import json
import os
import threading

import imagecodecs
import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("zarr")

import zarr  # noqa: E402
from zarr.codecs import GzipCodec, ZstdCodec  # noqa: E402

from dragon_gpu.cli import app  # noqa: E402
from dragon_gpu.errors import CorruptInputError, UnsafeInputError  # noqa: E402
from dragon_gpu.io import open_mask  # noqa: E402
from tests.helpers.zarr_files import write_ome_image  # noqa: E402

runner = CliRunner()


@pytest.fixture(params=["dragon", "zarr"], autouse=True)
def decode_path(request, monkeypatch):
    """Every refusal holds on both decode paths: the project's and zarr-python's."""
    if request.param == "zarr":
        monkeypatch.setenv("DRAGON_GPU_ZARR_DECODE", "zarr")
    return request.param


def _array(path, data, **kw):
    kw.setdefault("chunks", (16, 16))
    zarr.create_array(path, data=data, **kw)
    return path


def _detect(body, dye, *extra):
    return runner.invoke(app, ["detect", str(body), str(dye), "--device", "cpu", "--json",
                               *extra])


def _one_line_error(res, needle):
    assert res.exit_code == 2, res.output
    assert needle in res.output, res.output
    assert res.output.strip().count("\n") == 0, res.output


@pytest.fixture
def gray(rng):
    return rng.integers(0, 256, (40, 40), dtype=np.uint8)


@pytest.mark.parametrize("dtype", ["float32", "int16", "uint32"])
def test_other_dtypes_are_refused(tmp_path, dtype):
    p = _array(tmp_path / "a.zarr", np.zeros((20, 20), dtype=dtype))
    _one_line_error(_detect(p, p), f"dtype {dtype}")


def test_unknown_codec_is_refused(tmp_path, gray):
    p = _array(tmp_path / "a.zarr", gray, compressors=ZstdCodec())
    meta = json.loads((p / "zarr.json").read_text())
    meta["codecs"][-1]["name"] = "mystery-codec"
    (p / "zarr.json").write_text(json.dumps(meta))
    _one_line_error(_detect(p, p), "mystery-codec")


def test_zstd_bomb_is_refused_before_decoding(tmp_path, gray):
    p = _array(tmp_path / "a.zarr", gray, compressors=ZstdCodec())
    (p / "c" / "1" / "1").write_bytes(imagecodecs.zstd_encode(bytes(64 << 20)))
    with open_mask(p) as r, pytest.raises(CorruptInputError, match="decompression bomb"):
        r.read_rows(0, 40)


def test_gzip_bomb_is_refused_without_inflating_it(tmp_path, gray):
    p = _array(tmp_path / "a.zarr", gray, compressors=GzipCodec())
    bomb = gzip.compress(bytes(3 << 20), 9)  # small enough to pass the stored-size check
    assert len(bomb) < 4096
    (p / "c" / "0" / "1").write_bytes(bomb)
    res = _detect(p, p)
    _one_line_error(res, "decompression bomb")


def test_bloated_chunk_is_refused(tmp_path, gray, rng):
    p = _array(tmp_path / "a.zarr", gray, compressors=ZstdCodec())
    (p / "c" / "0" / "0").write_bytes(rng.bytes(4096 + 3 * 256))
    _one_line_error(_detect(p, p), "more than any encoder writes")


@pytest.mark.parametrize("compressors", [None, ZstdCodec()])
def test_truncated_chunk_is_a_clear_error(tmp_path, gray, compressors):
    p = _array(tmp_path / "a.zarr", gray, compressors=compressors)
    chunk = p / "c" / "1" / "0"
    chunk.write_bytes(chunk.read_bytes()[:100])
    _one_line_error(_detect(p, p), "cannot be read")


def test_symlinked_chunk_is_refused(tmp_path, gray):
    p = _array(tmp_path / "a.zarr", gray, compressors=None)
    secret = tmp_path / "secret"
    secret.write_bytes(bytes(256))
    chunk = p / "c" / "0" / "0"
    chunk.unlink()
    os.symlink(secret, chunk)
    _one_line_error(_detect(p, p), "symbolic link")


@pytest.mark.parametrize("bad", ["../outside", "/etc", "s0/../../x", "http://host/x"])
def test_ome_dataset_paths_outside_the_store_are_refused(tmp_path, gray, bad):
    path = write_ome_image(tmp_path / "img.ome.zarr", np.stack([gray, gray]), version="0.5")
    meta = json.loads((path / "zarr.json").read_text())
    meta["attributes"]["ome"]["multiscales"][0]["datasets"][0]["path"] = bad
    (path / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(UnsafeInputError, match="points outside the store"):
        open_mask(f"{path}#c=0")


def test_huge_declared_shape_and_chunks_allocate_nothing(tmp_path):
    p = tmp_path / "huge.zarr"
    p.mkdir()
    meta = {"zarr_format": 3, "node_type": "array", "shape": [10**12, 10**12],
            "data_type": "uint8", "fill_value": 0,
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [10**6, 10**6]}},
            "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
            "codecs": [{"name": "bytes"}, {"name": "zstd", "configuration": {"level": 1}}]}
    (p / "zarr.json").write_text(json.dumps(meta))
    _one_line_error(_detect(p, p), "memory budget")
    res = runner.invoke(app, ["info", str(p), "--json"])
    assert res.exit_code == 0, res.output
    facts = json.loads(res.output)
    assert facts["shape"] == [10**12, 10**12] and facts["estimated_decode_seconds"] is None


def test_a_folder_without_zarr_metadata_is_not_an_image(tmp_path):
    (tmp_path / "d").mkdir()
    _one_line_error(_detect(tmp_path / "d", tmp_path / "d"), "nor a Zarr store")


def test_zip_store_is_recognised_by_content(tmp_path, gray):
    store = zarr.storage.ZipStore(tmp_path / "img.bin", mode="w")
    zarr.create_array(store, data=gray, chunks=(8, 8))
    store.close()
    with open_mask(tmp_path / "img.bin") as r:
        np.testing.assert_array_equal(r.read_rows(0, 40), gray)


# -- HTTP ---------------------------------------------------------------------------------------
class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture
def served(tmp_path):
    """``(folder, base URL)``: ``folder`` served over HTTP on 127.0.0.1, an ephemeral port."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_detect_over_http(served, rng):
    root, url = served
    body = np.where(rng.random((50, 44)) < 0.6, 0, 255).astype(np.uint8)
    dye = rng.integers(0, 256, (50, 44), dtype=np.uint8)
    write_ome_image(root / "img.ome.zarr", np.stack([body, dye]), version="0.5",
                    labels={"cells": (body < 128).astype(np.uint8) * 3})
    res = _detect(f"{url}/img.ome.zarr#c=0", f"{url}/img.ome.zarr#c=1", "--block-rows", "16")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    bm, dm = body < 128, dye >= 128
    assert (out["body_pixels"], out["dye_in_body_pixels"]) == (int(bm.sum()), int((bm & dm).sum()))
    assert out["body_path"] == f"{url}/img.ome.zarr#c=0"
    res = _detect(f"{url}/img.ome.zarr/labels/cells", f"{url}/img.ome.zarr#c=1")
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["body_pixels"] == int(bm.sum())


def test_http_missing_and_truncated_chunks(served, rng):
    root, url = served
    gray = rng.integers(0, 256, (32, 32), dtype=np.uint8)
    _array(root / "a.zarr", gray, compressors=ZstdCodec())
    (root / "a.zarr" / "c" / "0" / "1").unlink()
    res = _detect(f"{url}/a.zarr", f"{url}/a.zarr")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert any("1 chunk of the body image was absent" in w for w in out["warnings"])
    gray[:16, 16:] = 0
    assert out["body_pixels"] == int((gray < 128).sum())
    _one_line_error(_detect(f"{url}/a.zarr", f"{url}/a.zarr", "--strict"), "absent")
    chunk = root / "a.zarr" / "c" / "1" / "1"
    chunk.write_bytes(chunk.read_bytes()[:50])
    _one_line_error(_detect(f"{url}/a.zarr", f"{url}/a.zarr"), "cannot be read")


def test_http_store_that_does_not_exist(served):
    _root, url = served
    res = _detect(f"{url}/nothing.zarr", f"{url}/nothing.zarr")
    assert res.exit_code == 2 and "nothing.zarr" in res.output
