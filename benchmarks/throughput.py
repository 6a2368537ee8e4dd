#!/usr/bin/env python
"""Throughput of `dragon-gpu detect` (CPU) against what users write today, and against the floor.

For each pair it runs, alternating, in fresh processes (so each peak RSS is its own):

* ``naive``     load both images whole (h5py ``ds[:]`` / ``tifffile.imread``) and count with NumPy;
* ``blockloop`` a row-block loop over h5py slices / tifffile's segment iterator, counted with NumPy;
* ``dragon``    ``dragon_gpu.detect(..., device="cpu")``;
* ``decode``    dragon's readers alone, every row decoded and nothing counted: the decode floor.

It also measures memory bandwidth (a 1 GiB copy) for the bandwidth floor of the decoded bytes.
All methods must report the same counts, or the script fails.

Usage::

    python benchmarks/throughput.py --size 40000 --pairs u8-gzip-h5 bit-deflate-tif
    python benchmarks/throughput.py --size 100000 --pairs bit-deflate-tif --methods dragon decode
    python benchmarks/throughput.py --body B.tif --dye D.tif       # an existing pair
    python benchmarks/throughput.py --size 40000 --pairs u8-zstd-h5 u8-zstd-zarr

``u8-zstd-zarr`` is the ``u8-zstd-h5`` pair copied chunk for chunk into Zarr v3 (same chunk
shape, zstd level 3 in both), so the two rows compare the readers, not the layouts.
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
}
METHODS = ("naive", "blockloop", "dragon", "decode")
#: ``zarrpy``: dragon with Zarr chunks decoded by zarr-python's path (DRAGON_GPU_ZARR_DECODE=zarr).
EXTRA_METHODS = ("zarrpy",)


# --- the methods (run in a child process) -------------------------------------------------------
def _rules(path):
    """(is_tiff, rule for body, rule for dye) as a plain user would hand-code them."""
    import numpy as np

    if str(path).endswith((".tif", ".tiff")):
        import tifffile

        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            bits, miniswhite = page.bitspersample, int(page.photometric) == 0
        if bits == 1:
            # tifffile returns stored bits; MINISWHITE: a set bit is black.
            return (lambda a: a if miniswhite else ~a), (lambda a: ~a if miniswhite else a)
    return (lambda a: np.less(a, 128)), (lambda a: np.greater_equal(a, 128))


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


def method_zarrpy(body, dye):
    os.environ["DRAGON_GPU_ZARR_DECODE"] = "zarr"
    return method_dragon(body, dye)


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


def child(method, body, dye):
    t0 = time.perf_counter()
    counts = globals()[f"method_{method}"](body, dye)
    seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "counts": counts, "peak_rss": peak_rss()}))


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


def _stored(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _pair_paths(folder: Path, kind: str):
    ext = {"hdf5": "h5", "zarr": "zarr"}.get(PAIRS[kind]["fmt"], "tif")
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
    ap.add_argument("--repeats", type=int, default=3, help="alternating rounds (median reported)")
    ap.add_argument("--data", type=Path, default=Path("bench-data"), help="where pairs are kept")
    ap.add_argument("--clean", action="store_true", help="delete generated pairs at the end")
    args = ap.parse_args(argv)
    if args.child:
        child(*args.child)
        return

    if args.body:
        pairs = {args.body.parent.name: (args.body, args.dye)}
    else:
        pairs = {f"{k}-{args.size}": make_pair(k, args.size, args.data) for k in args.pairs}
    bandwidth = memory_bandwidth()
    print(f"machine: {machine()}; memory bandwidth (1 GiB copy): {bandwidth / 1e9:.1f} GB/s")
    print(f"command: python benchmarks/throughput.py {' '.join(sys.argv[1:])}")
    from dragon_gpu.io import open_mask

    # Rounds alternate over pairs and methods, so a change of machine load hits all of them.
    runs = {name: {m: [] for m in args.methods} for name in pairs}
    for _ in range(args.repeats):
        for name, (body, dye) in pairs.items():
            for m in args.methods:
                runs[name][m].append(run_child(m, body, dye))
    for name, (body, dye) in pairs.items():
        with open_mask(body) as rb, open_mask(dye) as rd:
            pixels = rb.height * rb.width
            decoded = rb.height * (rb.row_nbytes + rd.row_nbytes)
        stored = _stored(body) + _stored(dye)
        runs_of = runs[name]
        counts = {tuple(r["counts"]) for m in args.methods if m != "decode"
                  for r in runs_of[m]}
        if len(counts) > 1:
            raise SystemExit(f"methods disagree on {name}: {counts}")
        med = {m: statistics.median(r["seconds"] for r in runs_of[m]) for m in args.methods}
        rss = {m: max(r["peak_rss"] for r in runs_of[m]) for m in args.methods}
        floor = max(med.get("decode", 0.0), decoded / bandwidth)
        print(f"\n{name}: {rb.height} x {rb.width}, {stored / 1e6:.1f} MB on disk, "
              f"{decoded / 1e6:.1f} MB decoded; counts {counts.pop() if counts else '-'}")
        print(f"floor: {floor:.3f} s (decode-only {med.get('decode', float('nan')):.3f} s, "
              f"bandwidth {decoded / bandwidth:.3f} s)")
        print(f"| method | seconds (median of {args.repeats}) | Gpx/s | peak RSS MB | "
              "x faster than naive | x floor |")
        print("|---|---|---|---|---|---|")
        for m in args.methods:
            speedup = f"{med['naive'] / med[m]:.2f}" if "naive" in med else "-"
            print(f"| {m} | {med[m]:.3f} | {pixels / med[m] / 1e9:.2f} | {rss[m] / 2**20:.0f} | "
                  f"{speedup} | {med[m] / floor:.2f} |")
    if args.clean and not args.body:
        for name in pairs:
            shutil.rmtree(args.data / name, ignore_errors=True)


if __name__ == "__main__":
    main()
