#!/usr/bin/env python
"""Throughput of `dragon-gpu detect` (CPU) against what users write today, and against the floor.

For each pair it runs, alternating, in fresh processes (so each peak RSS is its own):

* ``naive``     load both images whole (h5py ``ds[:]`` / ``tifffile.imread``) and count with NumPy;
* ``blockloop`` a row-block loop over h5py slices / tifffile's segment iterator, counted with NumPy;
* ``dragon``    ``dragon_gpu.detect(..., device="cpu")``;
* ``decode``    dragon's readers alone, every row decoded and nothing counted;
* ``segments``  every strip, tile or chunk of both files decoded on dragon's decode pool, nothing
                assembled into rows nor counted: the decode-only floor of any reader of the files;
* ``vips``      libvips (pyvips, TIFF pairs only): threshold both images, AND, count, in one
                streamed pass (``bench`` extra).

It also measures memory bandwidth (a 1 GiB copy) for the bandwidth floor of the decoded bytes.
All methods must report the same counts, and those of the pair's ``truth.json`` (the
generator's exact counts at the default threshold: 128 for 8 bits, 32768 for 16), or the script
fails.

Usage::

    python benchmarks/throughput.py --size 40000 --pairs u8-gzip-h5 bit-deflate-tif
    python benchmarks/throughput.py --size 100000 --pairs bit-deflate-tif --methods dragon decode
    python benchmarks/throughput.py --body B.tif --dye D.tif       # an existing pair
    python benchmarks/throughput.py --size 40000 --pairs u8-zstd-h5 u8-zstd-zarr
    python benchmarks/throughput.py --size 40000 --pairs u8-deflate-tif u8-deflate-tiled-tif \
        u8-gzip-chunked-h5 --methods dragon segments vips --clean

``u8-zstd-zarr`` is the ``u8-zstd-h5`` pair copied chunk for chunk into Zarr v3 (same chunk
shape, zstd level 3 in both), so the two rows compare the readers, not the layouts. The tiled
pairs hold the pixels of ``u8-deflate-tif`` (256-row strips): ``u8-deflate-tiled-tif`` written by
tifffile in 512 x 512 deflate tiles, ``u8-gzip-chunked-h5`` by h5py in 1024 x 1024 gzip chunks;
``bit-deflate-tiled-tif`` is ``bit-deflate-tif`` in 512 x 512 deflate tiles. Every gray pair
comes from the realistic gray generator (``generate --texture``: textured dark body, noise,
uneven light, soft edges, bright vessels on autofluorescence), which compresses about 1.4:1 as
microscope images do: ``u8-gray-deflate-tif`` is ``generate --encoding u8 --texture`` (deflate,
the generator's 16-row strips), ``u8-gray-deflate-tiled-tif`` the same pixels re-written by
tifffile in 512 x 512 deflate tiles, ``u16-gray-deflate-tif`` is ``generate --encoding u16
--texture``. Timings are the best
of ``--repeats`` alternating rounds (the median is printed beside it); each child process
imports its libraries before its clock starts.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import machine  # noqa: E402

PAIRS = {
    # name: generate() arguments
    "bit-deflate-tif": dict(fmt="tiff", encoding="packed", compression="deflate"),
    "u8-gzip-h5": dict(fmt="hdf5", encoding="u8", compression="gzip"),
    "u8-zstd-h5": dict(fmt="hdf5", encoding="u8", compression="zstd"),
    # made from u8-zstd-h5 (see make_pair)
    "u8-zstd-zarr": dict(fmt="zarr", encoding="u8", compression="zstd"),
    "u8-deflate-tif": dict(fmt="tiff", encoding="u8", compression="deflate", rows_per_strip=256),
    # copies of the pairs above in tiles and chunk grids (see make_pair)
    "u8-deflate-tiled-tif": dict(fmt="tiled", source="u8-deflate-tif", tile=(512, 512)),
    "bit-deflate-tiled-tif": dict(fmt="tiled", source="bit-deflate-tif", tile=(512, 512)),
    "u8-gzip-chunked-h5": dict(fmt="chunked", source="u8-deflate-tif", chunks=(1024, 1024)),
    # gray pairs: always the realistic gray generator (generate --texture), default deflate strips
    "u8-gray-deflate-tif": dict(fmt="tiff", encoding="u8", texture=True),
    "u8-gray-deflate-tiled-tif": dict(fmt="tiled", source="u8-gray-deflate-tif", tile=(512, 512)),
    "u16-gray-deflate-tif": dict(fmt="tiff", encoding="u16", texture=True),
}
METHODS = ("naive", "blockloop", "dragon", "decode", "segments", "vips")
#: ``zarrpy``: dragon with Zarr chunks decoded by zarr-python's path (DRAGON_GPU_ZARR_DECODE=zarr);
#: ``dragonnp``: dragon with its compiled counting kernel off, NumPy counting (DRAGON_GPU_CPU_COUNT=numpy).
EXTRA_METHODS = ("zarrpy", "dragonnp")
#: environment a method's child process starts with (set before its imports)
METHOD_ENV = {"zarrpy": {"DRAGON_GPU_ZARR_DECODE": "zarr"},
              "dragonnp": {"DRAGON_GPU_CPU_COUNT": "numpy"}}


# --- the methods (run in a child process) -------------------------------------------------------
def _threshold(path) -> int:
    """The default threshold of the file's pixels: 128 for 8 bits, 32768 for 16 (SPEC)."""
    from dragon_gpu.io import default_threshold, open_mask

    with open_mask(path) as r:
        return default_threshold(r.bits)


def _rules(path):
    """(rule for body, rule for dye) as a plain user would hand-code them."""
    import numpy as np

    if str(path).endswith((".tif", ".tiff")):
        import tifffile

        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            bits, miniswhite = page.bitspersample, int(page.photometric) == 0
        if bits == 1:
            # tifffile returns stored bits; MINISWHITE: a set bit is black.
            return (lambda a: a if miniswhite else ~a), (lambda a: ~a if miniswhite else a)
    t = _threshold(path)
    return (lambda a: np.less(a, t)), (lambda a: np.greater_equal(a, t))


def _load(path):
    if str(path).endswith(".zarr"):
        import zarr

        return zarr.open_array(path, mode="r")[:]
    if str(path).endswith((".tif", ".tiff")):
        import tifffile

        return tifffile.imread(path)
    import h5py

    with h5py.File(path, "r") as f:
        return f["mask"][:]


def method_naive(body, dye):
    import numpy as np

    body_rule, _ = _rules(body)
    _, dye_rule = _rules(dye)
    b = body_rule(_load(body))
    d = dye_rule(_load(dye))
    return int(np.count_nonzero(b)), int(np.count_nonzero(b & d)), int(np.count_nonzero(d))


def _row_blocks(path):
    """Row blocks the way a careful user would loop: h5py chunk-row slices, tifffile segments."""
    if str(path).endswith((".tif", ".tiff")):
        import tifffile

        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            for segment, _indices, _shape in page.segments():
                yield segment.reshape(segment.shape[-3], segment.shape[-2])
        return
    if str(path).endswith(".zarr"):
        import zarr

        arr = zarr.open_array(path, mode="r")
        for r in range(0, arr.shape[0], arr.chunks[0]):
            yield arr[r:r + arr.chunks[0]]
        return
    import h5py

    with h5py.File(path, "r") as f:
        ds = f["mask"]
        step = ds.chunks[0] if ds.chunks else 1024
        for r in range(0, ds.shape[0], step):
            yield ds[r:r + step]


def method_blockloop(body, dye):
    import numpy as np

    body_rule, _ = _rules(body)
    _, dye_rule = _rules(dye)
    nb = nd = nbd = 0
    bi, di = _row_blocks(body), _row_blocks(dye)
    bbuf = dbuf = None
    # The two files may have different strip heights: re-cut both streams to common rows.
    import collections

    bq, dq = collections.deque(), collections.deque()
    brows = drows = 0
    for b_block in bi:
        bq.append(b_block)
        brows += len(b_block)
        while drows < brows:
            d_block = next(di)
            dq.append(d_block)
            drows += len(d_block)
        bbuf = np.concatenate(bq) if len(bq) > 1 else bq[0]
        dbuf = np.concatenate(dq) if len(dq) > 1 else dq[0]
        n = min(len(bbuf), len(dbuf))
        b = body_rule(bbuf[:n])
        d = dye_rule(dbuf[:n])
        nb += int(np.count_nonzero(b))
        nd += int(np.count_nonzero(d))
        nbd += int(np.count_nonzero(b & d))
        bq.clear(), dq.clear()
        if len(bbuf) > n:
            bq.append(bbuf[n:])
        if len(dbuf) > n:
            dq.append(dbuf[n:])
        brows, drows = len(bbuf) - n, len(dbuf) - n
    return nb, nbd, nd


def method_dragon(body, dye):
    import dragon_gpu

    c = dragon_gpu.detect(body, dye, device="cpu").counts
    return c.body, c.dye_in_body, c.dye


method_zarrpy = method_dragon  # with METHOD_ENV's settings
method_dragonnp = method_dragon


def method_decode(body, dye):
    from dragon_gpu.io import open_mask
    from dragon_gpu.pipeline import plan_blocks
    from dragon_gpu.streaming import prefetch

    with open_mask(body) as rb, open_mask(dye) as rd:
        blocks = plan_blocks(rb.height, rb.row_nbytes + rd.row_nbytes,
                             (rb.row_granularity, rd.row_granularity), 1 << 30)
        for _ in prefetch((rb, rd), blocks):
            pass
    return None


def method_segments(body, dye):
    """Every segment of both files decoded on the decode pool, in file order, a few queued per
    thread; nothing assembled or counted."""
    from collections import deque

    from dragon_gpu.io import open_mask
    from dragon_gpu.io._decode import decode_pool, decode_workers
    from dragon_gpu.io._segments import SegmentedReader

    with open_mask(body) as rb, open_mask(dye) as rd:
        if not all(isinstance(r, SegmentedReader) and getattr(r, "seg_rows", None)
                   for r in (rb, rd)):
            return method_decode(body, dye)  # rows read by a library: no segments of ours
        pool, window, pending = decode_pool(), 4 * decode_workers(), deque()
        for r in (rb, rd):
            for seg in r.segments(0, r.height):
                pending.append(pool.submit(r.decode_segment, seg))
                if len(pending) >= window:
                    pending.popleft().result()
        for f in pending:
            f.result()
    return None


def method_vips(body, dye):
    """libvips: body = brightness < t, dye = brightness >= t at the default threshold t (128 for
    8 bits, 32768 for 16; vips applies the photometric interpretation, as the rules do), joined into one 2-band image whose 2 x 2 joint histogram
    (``hist_find_ndim``) gives all three counts, in one streamed pass."""
    import numpy as np
    import pyvips

    if not str(body).endswith((".tif", ".tiff")):
        return None
    a = pyvips.Image.new_from_file(str(body), access="sequential")
    b = pyvips.Image.new_from_file(str(dye), access="sequential")
    if a.width * a.height >= 1 << 32:
        raise SystemExit("vips: hist_find_ndim counts in 32 bits; the image has too many pixels")
    ta, tb = _threshold(body), _threshold(dye)
    hist = (a < ta).bandjoin(b >= tb).hist_find_ndim(bins=2)
    assert (hist.width, hist.height, hist.bands, hist.format) == (2, 2, 1, "uint")
    # hist[dye bin, body bin]: bin 1 is a member (255), bin 0 is not
    j = np.ndarray(buffer=hist.write_to_memory(), dtype=np.uint32, shape=(2, 2)).astype(int)
    return int(j[0, 1] + j[1, 1]), int(j[1, 1]), int(j[1, 0] + j[1, 1])


#: imported before the clock starts: the timings are of the work, not of Python imports.
_IMPORTS = ("numpy", "tifffile", "h5py", "imagecodecs", "dragon_gpu.pipeline", "dragon_gpu.io")


def child(method, body, dye):
    import importlib

    os.environ.update(METHOD_ENV.get(method, {}))

    for name in _IMPORTS + (("pyvips",) if method == "vips" else ()) + (
            ("zarr",) if str(body).endswith(".zarr") else ()):
        importlib.import_module(name)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu0 = usage.ru_utime + usage.ru_stime
    t0 = time.perf_counter()
    counts = globals()[f"method_{method}"](body, dye)
    seconds = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"seconds": seconds, "counts": counts, "peak_rss": peak_rss(),
                      "cpu": usage.ru_utime + usage.ru_stime - cpu0}))


def peak_rss() -> int:
    """Peak resident bytes of this process (VmHWM: unlike ru_maxrss it is not inherited across
    fork + exec from a parent that used more)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# --- the driver ---------------------------------------------------------------------------------
def run_child(method, body, dye):
    out = subprocess.run([sys.executable, __file__, "--child", method, str(body), str(dye)],
                         capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"{method} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def memory_bandwidth() -> float:
    """Bytes a second of a 1 GiB copy (read + write counted once each)."""
    import numpy as np

    a = np.ones(1 << 30, np.uint8)
    b = np.empty_like(a)
    best = min(_timed(lambda: np.copyto(b, a)) for _ in range(3))
    return 2 * a.nbytes / best


def _timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0




def make_pair(kind: str, size: int, data: Path) -> tuple[Path, Path]:
    folder = data / f"{kind}-{size}"
    body, dye = _pair_paths(folder, kind)
    if body.exists() and dye.exists():
        return body, dye
    if PAIRS[kind]["fmt"] == "zarr":
        return _zarr_copy(make_pair("u8-zstd-h5", size, data), body, dye)
    if PAIRS[kind]["fmt"] in ("tiled", "chunked"):
        spec = PAIRS[kind]
        source = make_pair(spec["source"], size, data)
        print(f"writing {kind} {size} x {size} in {folder} ...", file=sys.stderr)
        t0 = time.perf_counter()
        copy = _tiled_copy if spec["fmt"] == "tiled" else _chunked_copy
        copy(source, body, dye, spec.get("tile") or spec.get("chunks"))
        print(f"  written in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        return body, dye
    from dragon_gpu.simulate import generate

    print(f"generating {kind} {size} x {size} in {folder} ...", file=sys.stderr)
    t0 = time.perf_counter()
    generate(folder, height=size, width=size, seed=1, kind="typical", **PAIRS[kind])
    print(f"  generated in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return body, dye


def _zarr_copy(h5_pair, body: Path, dye: Path) -> tuple[Path, Path]:
    """The HDF5 pair as Zarr v3 arrays of the same chunk shape, zstd level 3 (as hdf5plugin)."""
    import h5py
    import zarr
    from zarr.codecs import ZstdCodec

    body.parent.mkdir(parents=True, exist_ok=True)
    for src, dst in zip(h5_pair, (body, dye)):
        with h5py.File(src, "r") as f:
            ds = f["mask"]
            arr = zarr.create_array(dst, shape=ds.shape, chunks=ds.chunks, dtype=ds.dtype,
                                    compressors=ZstdCodec(level=3), fill_value=0)
            step = ds.chunks[0] * 64
            for r in range(0, ds.shape[0], step):
                arr[r:r + step] = ds[r:r + step]
    return body, dye


def _bands(src, rows: int):
    """(row0, rows) bands of a pair's file, read with dragon's reader (bounded memory)."""
    import numpy as np

    from dragon_gpu.io import open_mask

    with open_mask(src) as r:
        for r0 in range(0, r.height, rows):
            band = r.read_rows(r0, min(r.height, r0 + rows))
            yield r0, (np.unpackbits(band, axis=1)[:, :r.width] if r.packed else band)


def _tiled_copy(src_pair, body: Path, dye: Path, tile) -> None:
    """Both TIFFs of ``src_pair`` re-written by tifffile in deflate tiles (same pixels, same
    photometric), tile row by tile row."""
    import numpy as np
    import tifffile

    body.parent.mkdir(parents=True, exist_ok=True)
    for src, dst in zip(src_pair, (body, dye)):
        with tifffile.TiffFile(src) as tif:
            page = tif.pages[0]
            shape, bits, dtype = page.shape, page.bitspersample, page.dtype
            photometric = "miniswhite" if int(page.photometric) == 0 else "minisblack"
        th, tw = tile

        def tiles():
            for _r0, band in _bands(src, th):
                if bits == 1:  # back to stored bits (the reader's rows are stored bits too)
                    band = band.astype(bool)
                pad = np.zeros((th, -(-shape[1] // tw) * tw), band.dtype)
                pad[:band.shape[0], :shape[1]] = band
                for c in range(0, shape[1], tw):
                    yield pad[:, c:c + tw]

        tifffile.imwrite(dst, tiles(), shape=shape, dtype=bool if bits == 1 else dtype,
                         tile=tile, compression="zlib", photometric=photometric,
                         maxworkers=2)


def _chunked_copy(src_pair, body: Path, dye: Path, chunks) -> None:
    """Both images of ``src_pair`` as HDF5 datasets ``mask`` in gzip chunks of ``chunks``."""
    import h5py

    body.parent.mkdir(parents=True, exist_ok=True)
    for src, dst in zip(src_pair, (body, dye)):
        with h5py.File(dst, "w") as f:
            ds = None
            for r0, band in _bands(src, chunks[0]):
                if ds is None:
                    from dragon_gpu.io import open_mask

                    with open_mask(src) as r:
                        shape = r.shape
                    ds = f.create_dataset("mask", shape=shape, dtype=band.dtype, chunks=chunks,
                                          compression="gzip")
                ds[r0:r0 + band.shape[0]] = band


def _truth_file(kind: str, size: int, data: Path) -> Path:
    """The generator's ``truth.json`` of a pair: its own, or that of the pair it copies."""
    spec = PAIRS[kind]
    source = "u8-zstd-h5" if spec["fmt"] == "zarr" else spec.get("source")
    return _truth_file(source, size, data) if source else data / f"{kind}-{size}" / "truth.json"


def truth_counts(path: Path):
    """(body, dye in body, dye) of ``truth.json``, the exact counts at the default threshold
    (checked), or None when there is no such file."""
    if not path.is_file():
        return None
    t = json.loads(path.read_text())
    for key in ("body_threshold", "dye_threshold"):  # gray pairs say at which threshold
        bits = 16 if t.get("parameters", {}).get("encoding") == "u16" else 8
        if key in t and t[key] != 1 << (bits - 1):
            raise SystemExit(f"{path}: {key} {t[key]} is not the default threshold")
    return t["body_pixels"], t["dye_in_body_pixels"], t["dye_pixels"]


def _stored(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _pair_paths(folder: Path, kind: str):
    ext = {"hdf5": "h5", "chunked": "h5", "zarr": "zarr"}.get(PAIRS[kind]["fmt"], "tif")
    return folder / f"body.{ext}", folder / f"dye.{ext}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--child", nargs=3, metavar=("METHOD", "BODY", "DYE"), help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, default=40000, help="side of generated pairs")
    ap.add_argument("--pairs", nargs="+", default=list(PAIRS), choices=list(PAIRS))
    ap.add_argument("--body", type=Path, help="use an existing pair instead of generating")
    ap.add_argument("--dye", type=Path)
    ap.add_argument("--methods", nargs="+", default=list(METHODS),
                    choices=METHODS + EXTRA_METHODS)
    ap.add_argument("--repeats", type=int, default=3,
                    help="alternating rounds (the best is reported, the median beside it)")
    ap.add_argument("--data", type=Path, default=Path("bench-data"), help="where pairs are kept")
    ap.add_argument("--clean", action="store_true", help="delete generated pairs at the end")
    args = ap.parse_args(argv)
    if args.child:
        child(*args.child)
        return

    if args.body:
        pairs = {args.body.parent.name: (args.body, args.dye)}
        truths = {args.body.parent.name: truth_counts(args.body.parent / "truth.json")}
    else:
        pairs = {f"{k}-{args.size}": make_pair(k, args.size, args.data) for k in args.pairs}
        truths = {f"{k}-{args.size}": truth_counts(_truth_file(k, args.size, args.data))
                  for k in args.pairs}
    bandwidth = memory_bandwidth()
    print(f"machine: {machine()}; memory bandwidth (1 GiB copy): {bandwidth / 1e9:.1f} GB/s")
    print(f"command: python benchmarks/throughput.py {' '.join(sys.argv[1:])}")
    from dragon_gpu.io import open_mask

    # Rounds alternate over pairs and methods, so a change of machine load hits all of them.
    runs = {name: {m: [] for m in args.methods} for name in pairs}
    for _ in range(args.repeats):
        for name, (body, dye) in pairs.items():
            for m in args.methods:
                if m == "vips" and not str(body).endswith((".tif", ".tiff")):
                    continue  # libvips reads TIFF, not HDF5 or Zarr
                runs[name][m].append(run_child(m, body, dye))
    for name, (body, dye) in pairs.items():
        with open_mask(body) as rb, open_mask(dye) as rd:
            pixels = rb.height * rb.width
            decoded = rb.height * (rb.row_nbytes + rd.row_nbytes)
        stored = _stored(body) + _stored(dye)
        nan = float("nan")
        runs_of = {m: r for m, r in runs[name].items() if r}
        methods = list(runs_of)
        counts = {tuple(r["counts"]) for m in methods if m not in ("decode", "segments")
                  for r in runs_of[m]}
        if len(counts) > 1:
            raise SystemExit(f"methods disagree on {name}: {counts}")
        truth = truths[name]
        if counts and truth is not None and counts != {tuple(truth)}:
            raise SystemExit(f"counts {counts} on {name} differ from truth.json's {truth}")
        best = {m: min(r["seconds"] for r in runs_of[m]) for m in methods}
        med = {m: statistics.median(r["seconds"] for r in runs_of[m]) for m in methods}
        rss = {m: max(r["peak_rss"] for r in runs_of[m]) for m in methods}
        cpu = {m: min(r.get("cpu", nan) for r in runs_of[m]) for m in methods}
        floors = [best[m] for m in ("decode", "segments") if m in best]
        floor = max(min(floors, default=0.0), decoded / bandwidth)
        checked = truth is not None and bool(counts)
        print(f"\n{name}: {rb.height} x {rb.width}, {stored / 1e6:.1f} MB on disk, "
              f"{decoded / 1e6:.1f} MB decoded; counts {counts.pop() if counts else '-'}"
              f"{' (= truth.json)' if checked else ''}")
        print(f"floor: {floor:.3f} s (decode-only: rows {best.get('decode', nan):.3f} s, "
              f"segments {best.get('segments', nan):.3f} s; bandwidth "
              f"{decoded / bandwidth:.3f} s)")
        print(f"| method | best of {args.repeats} s | median s | CPU s (least) | Gpx/s | "
              "peak RSS MB | x faster than naive | x floor |")
        print("|---|---|---|---|---|---|---|---|")
        for m in methods:
            speedup = f"{best['naive'] / best[m]:.2f}" if "naive" in best else "-"
            print(f"| {m} | {best[m]:.3f} | {med[m]:.3f} | {cpu[m]:.2f} | "
                  f"{pixels / best[m] / 1e9:.2f} | {rss[m] / 2**20:.0f} | {speedup} | "
                  f"{best[m] / floor:.2f} |")
        if "vips" in best and "dragon" in best:
            print(f"dragon vs libvips: {best['vips'] / best['dragon']:.2f}x faster "
                  f"(libvips {best['vips']:.3f} s, dragon {best['dragon']:.3f} s; exact counts "
                  "agree)")
    if args.clean and not args.body:
        made = set(args.pairs) | {PAIRS[k]["source"] for k in args.pairs if "source" in PAIRS[k]}
        made |= {"u8-zstd-h5"} if "u8-zstd-zarr" in args.pairs else set()
        for kind in made:
            shutil.rmtree(args.data / f"{kind}-{args.size}", ignore_errors=True)


if __name__ == "__main__":
    main()
