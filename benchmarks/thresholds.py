"""The cost of threshold methods: the histogram pass against the counting pass.

Two parts:

1. the per-block histogram functions on in-memory blocks (no decoding), seconds per Gpixel on
   one thread and on the CPU engine's threads;
2. ``detect`` on a gray pair of TIFF files (deflate, 256-row strips) with a fixed threshold, with
   ``--threshold otsu`` (uint8 pair: one joint-histogram pass that also gives the counts) and
   with a uint16 body (``--body-threshold otsu``: a histogram pass over the body, then the
   counting pass). Best of ``--repeat`` runs in this process, counts checked against NumPy.

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


def gray_pair(size: int, seed: int = 0):
    """A gray pair: a dark disc body with noise on a bright background, sparse bright dye."""
    rng = np.random.default_rng(seed)
    yy, xx = np.ogrid[:size, :size]
    disc = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (0.35 * size) ** 2
    body = np.where(disc, 60, 190).astype(np.int16)
    body += rng.normal(0, 22, (size, size)).astype(np.int16)
    body = body.clip(0, 255).astype(np.uint8)
    dye = rng.normal(50, 20, (size, size)).astype(np.int16)
    dye[rng.random((size, size)) < 0.08] += 150
    return body, dye.clip(0, 255).astype(np.uint8)


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
    from dragon_gpu.model import RowRange

    size = args.size
    body, dye = gray_pair(size)
    body16 = body.astype(np.uint16) * 257
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

    work = tempfile.mkdtemp(prefix="dragon-thr-", dir=args.workdir)
    try:
        paths = {}
        for name, data in (("body", body), ("dye", dye), ("body16", body16)):
            paths[name] = os.path.join(work, f"{name}.tif")
            tifffile.imwrite(paths[name], data, compression="deflate", rowsperstrip=256)
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
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
