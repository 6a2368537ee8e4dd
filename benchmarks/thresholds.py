"""The cost of threshold methods: the histogram pass against the counting pass.

Two parts:

1. the per-block histogram functions on in-memory blocks (no decoding), seconds per Gpixel on
   one thread and on the CPU engine's threads;
2. ``detect`` on a gray pair of TIFF files (deflate, 256-row strips) with a fixed threshold, with
   ``--threshold otsu`` (uint8 pair: one joint-histogram pass that also gives the counts) and
   with a uint16 body (``--body-threshold otsu``: a histogram pass over the body, then the
   counting pass). Best of ``--repeat`` runs in this process, counts checked against NumPy.

The gray images come from the realistic gray generator (``generate --texture``, seed 0): the
8-bit pair from ``--encoding u8``, the 16-bit body from ``--encoding u16``, written in 256-row
deflate strips and read back whole (``--size`` is small enough for that).

The files live under ``--workdir`` and are deleted afterwards::

    python benchmarks/thresholds.py --size 8192

Prints Markdown tables and the machine it ran on.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

import numpy as np
import tifffile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import machine  # noqa: E402

from dragon_gpu.engines.cpu import CpuEngine  # noqa: E402
from dragon_gpu.engines.cpu_hist import histogram_block, joint_histogram_block  # noqa: E402
from dragon_gpu.pipeline import detect  # noqa: E402
from dragon_gpu.thresholds import compute  # noqa: E402


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def gray_pair(size: int, work: str, seed: int = 0):
    """Paths and pixels of the generator's gray pair: (paths, body, dye, body16), where
    ``paths`` maps "body", "dye" (8-bit pair) and "body16" (the 16-bit pair's body) to files."""
    from dragon_gpu.simulate import generate

    paths = {}
    for encoding in ("u8", "u16"):
        folder = os.path.join(work, encoding)
        generate(folder, height=size, width=size, seed=seed, encoding=encoding, texture=True,
                 compression="deflate", rows_per_strip=256)
        if encoding == "u8":
            paths["body"], paths["dye"] = (os.path.join(folder, f"{n}.tif")
                                           for n in ("body", "dye"))
        else:
            paths["body16"] = os.path.join(folder, "body.tif")
    body, dye, body16 = (tifffile.imread(paths[n]) for n in ("body", "dye", "body16"))
    assert (body.dtype, dye.dtype, body16.dtype) == (np.uint8, np.uint8, np.uint16)
    return paths, body, dye, body16


class _Reader:
    """A block source over an in-memory plane for the streaming histogram."""

    def __init__(self, data):
        from dragon_gpu.io.base import Kind

        self.data, self.dtype, self.kind, self.packed = data, data.dtype, Kind.gray, False
        self.shape, self.row_items = data.shape, data.shape[1]

    def empty_rows(self, rows):
        return np.empty((rows, self.row_items), self.dtype)

    def read_rows(self, a, b, out=None):
        out = out[:b - a] if out is not None else self.empty_rows(b - a)
        out[...] = self.data[a:b]
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=8192)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="dragon-thr-", dir=args.workdir)
    try:
        paths, body, dye, body16 = gray_pair(args.size, work)
        run_all(args, paths, body, dye, body16)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_all(args, paths, body, dye, body16) -> None:
    from dragon_gpu.model import RowRange

    size = body.shape[0]
    gpx = size * size / 1e9
    engine = CpuEngine()
    blocks = [RowRange(r, min(size, r + 1024)) for r in range(0, size, 1024)]
    print(f"machine: {machine()}; image {size} x {size}; best of {args.repeat}\n")
    print("| histogram of in-memory blocks | 1 thread s/Gpx | "
          f"CPU engine ({engine.threads} threads) s/Gpx |")
    print("|---|---:|---:|")
    for name, one, readers in (
            ("uint8 plane (256 bins)", lambda: histogram_block(body), (_Reader(body),)),
            ("uint16 plane (65536 bins)", lambda: histogram_block(body16), (_Reader(body16),)),
            ("uint8 pair, joint (65536 bins)", lambda: joint_histogram_block(body, dye),
             (_Reader(body), _Reader(dye)))):
        t1 = best(one, args.repeat)
        tn = best(lambda: engine.histogram(readers, blocks), args.repeat)
        print(f"| {name} | {t1 / gpx:.2f} | {tn / gpx:.2f} |")
    hist16 = np.bincount(body16.ravel(), minlength=65536)
    print("\n| method on a 65536-bin histogram | ms |\n|---|---:|")
    for method in ("otsu", "li", "triangle", "yen", "isodata", "mean"):
        print(f"| {method} | {1e3 * best(lambda: compute(method, hist16), 1):.0f} |")

    print(f"\n| detect, {size} x {size} deflate TIFF, --device cpu | passes | s | Gpx/s |")
    print("|---|---:|---:|---:|")
    runs = (("uint8 pair, --threshold 128", "body", dict(threshold=128), 1,
             (128, 128)),
            ("uint8 pair, --threshold otsu (joint histogram)", "body",
             dict(threshold="otsu"), 1, None),
            ("uint16 body, --body-threshold 32768", "body16",
             dict(body_threshold=32768, dye_threshold=128), 1, (32768, 128)),
            ("uint16 body, --body-threshold otsu (histogram + count)", "body16",
             dict(body_threshold="otsu", dye_threshold=128), 2, None))
    for label, body_name, kw, passes, fixed in runs:
        result = None

        def run():
            nonlocal result
            result = detect(paths[body_name], paths["dye"], device="cpu", **kw)
        seconds = best(run, args.repeat)
        d = result.to_dict()
        ref = body16 if body_name == "body16" else body
        b = ref < d["body_threshold"]
        assert d["body_pixels"] == int(b.sum())
        assert d["dye_in_body_pixels"] == int((b & (dye >= d["dye_threshold"])).sum())
        print(f"| {label} (t = {d['body_threshold']}, {d['dye_threshold']}) | {passes} | "
              f"{seconds:.2f} | {gpx / seconds:.3f} |")


if __name__ == "__main__":
    main()
