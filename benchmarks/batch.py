#!/usr/bin/env python
"""Pairs per hour of `dragon-gpu batch`: local worker processes against a 2-worker Dask cluster.

It writes a manifest of ``--pairs`` pairs (default 200) of ``--size`` x ``--size`` 1-bit TIFFs
(default 10,000 x 10,000; packed bits, deflate, 64-row strips, as a microscope's bilevel masks
would be stored), then runs the same batch in each configuration into a fresh RESULTS.csv, in
rounds (``--repeats``), and prints a table of medians. Every configuration must report, for every
pair, the exact counts known when the pair was drawn (the generator's truth, or NumPy on the
blobs), or the script fails.

Configurations: ``loop`` is the baseline, ``dragon_gpu.detect`` called pair after pair in this
process (no worker processes, no results file); ``local-N`` is ``dragon-gpu batch --workers N``;
``dask-2`` is ``dragon-gpu batch --scheduler local --workers 2``, cluster start-up included.

The pairs come from ``dragon_gpu.simulate.generate`` (``--generator simulate``, the default
where it exists: cancer for even seeds, healthy for odd ones) or from this script's own random
blobs (``--generator blobs``, written before the generator reached main): a body whose radius
wobbles with the angle, covering about a third of the image, and dye lit in random 64 x 64
squares at a density that varies from pair to pair, with 2% of its pixels flipped at random.
Drawing a 10k x 10k pair costs far more than counting it, so only ``--distinct`` pairs are drawn
and the manifest names each of them several times, through hard links (distinct paths, same
bytes; all of it sits in the page cache either way).

Usage::

    python benchmarks/batch.py                              # 200 pairs of 10k x 10k
    python benchmarks/batch.py --pairs 20 --size 4000       # a quick look
    python benchmarks/batch.py --configs loop local-1 dask-2 --keep
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import machine  # noqa: E402

CONFIGS = {
    # name: (scheduler, workers); "loop" is the baseline: detect() pair after pair, in-process.
    "loop": ("loop", 0),
    "local-1": (None, 1),
    "local-2": (None, 2),
    "dask-2": ("local", 2),
}


def draw_pair(folder: Path, side: int, seed: int) -> dict:
    """Write ``body.tif`` and ``dye.tif`` under ``folder``; return their NumPy counts."""
    import tifffile

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    base = side * rng.uniform(0.30, 0.36)
    harmonics = [(k, rng.uniform(0.02, 0.10), rng.uniform(0, 2 * np.pi)) for k in range(2, 7)]
    density = rng.uniform(0.04, 0.20)
    squares = rng.random((-(-side // 64), -(-side // 64))) < density
    # The outline is drawn on a grid 4 times coarser and blown up: smooth enough for a blob,
    # and 16 times fewer sines than drawing it pixel by pixel.
    coarse = -(-side // 4)
    c = coarse / 2 + rng.uniform(-0.05, 0.05, 2) * coarse
    dy = (np.arange(coarse) - c[0])[:, None]
    dx = (np.arange(coarse) - c[1])[None, :]
    theta = np.arctan2(dy, dx)
    radius = base / 4 * (1 + sum(a * np.cos(k * theta + p) for k, a, p in harmonics))
    outline = np.hypot(dy, dx) < radius
    body = np.repeat(np.repeat(outline, 4, axis=0), 4, axis=1)[:side, :side]
    dye = np.repeat(np.repeat(squares, 64, axis=0), 64, axis=1)[:side, :side]
    # Speckle: 2% of pixels flipped at random, inside and outside the body, so the dye does
    # not compress to nothing (about 1.5 MB a 10k x 10k image instead of a few kB).
    dye ^= rng.random((side, side), dtype=np.float32) < 0.02
    # Body: MINISWHITE, a set bit is black (the body is dark). Dye: MINISBLACK, set is white.
    tifffile.imwrite(folder / "body.tif", body, photometric="miniswhite", compression="zlib",
                     rowsperstrip=64)
    tifffile.imwrite(folder / "dye.tif", dye, photometric="minisblack", compression="zlib",
                     rowsperstrip=64)
    n_body = int(np.count_nonzero(body))
    n_both = int(np.count_nonzero(np.logical_and(body, dye, out=dye)))
    return {"body_pixels": n_body, "dye_in_body_pixels": n_both}


def simulate_pair(folder: Path, side: int, seed: int) -> dict:
    """A pair from ``dragon_gpu.simulate`` (1-bit deflate TIFF, 64-row strips), cancer for even
    seeds and healthy for odd ones; its exact truth comes from the generator."""
    from dragon_gpu.simulate import generate

    truth = generate(folder, height=side, width=side, seed=seed,
                     kind="cancer" if seed % 2 == 0 else "healthy", fmt="tiff",
                     encoding="packed", compression="deflate", rows_per_strip=64)
    return {k: truth[k] for k in ("body_pixels", "dye_in_body_pixels")}


def make_colony(data: Path, pairs: int, distinct: int, side: int,
                generator: str) -> tuple[Path, dict]:
    """A manifest of ``pairs`` pairs drawn from ``distinct`` generated ones; truth by id."""
    truths, rows = {}, ["id,body,dye"]
    t0 = time.perf_counter()
    make = simulate_pair if generator == "simulate" else draw_pair
    drawn = [make(data / "drawn" / f"d{k:03d}", side, seed=k) for k in range(distinct)]
    print(f"drew {distinct} pairs of {side} x {side} ({generator}) in "
          f"{time.perf_counter() - t0:.1f} s", file=sys.stderr)
    for i in range(pairs):
        k = i % distinct
        folder = data / "pairs" / f"p{i:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("body.tif", "dye.tif"):
            target = folder / name
            if not target.exists():
                os.link(data / "drawn" / f"d{k:03d}" / name, target)
        rows.append(f"p{i:04d},pairs/p{i:04d}/body.tif,pairs/p{i:04d}/dye.tif")
        truths[f"p{i:04d}"] = drawn[k]
    manifest = data / "manifest.csv"
    manifest.write_text("\n".join(rows) + "\n")
    return manifest, truths


def run_config(name: str, manifest: Path, truths: dict, data: Path) -> float:
    """Run the batch in one configuration; check every row against NumPy; return the wall time."""
    from dragon_gpu.batching import read_manifest, run_batch
    from dragon_gpu.pipeline import detect

    scheduler, workers = CONFIGS[name]
    out = data / f"results-{name}.csv"
    out.unlink(missing_ok=True)
    t0 = time.perf_counter()
    if scheduler == "loop":
        records = [{"id": p.id, "status": "ok", **detect(p.body, p.dye, device="cpu").to_dict()}
                   for p in read_manifest(manifest)]
    else:
        records = run_batch(manifest, out, scheduler=scheduler, workers=workers,
                            device="cpu").records
    wall = time.perf_counter() - t0
    bad = [r["id"] for r in records if r["status"] != "ok"
           or r["body_pixels"] != truths[r["id"]]["body_pixels"]
           or r["dye_in_body_pixels"] != truths[r["id"]]["dye_in_body_pixels"]]
    if bad or len(records) != len(truths):
        raise SystemExit(f"{name}: wrong or missing rows for {bad[:5]}")
    return wall




def _default_generator() -> str:
    try:
        import dragon_gpu.simulate  # noqa: F401
    except ImportError:
        return "blobs"
    return "simulate"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--pairs", type=int, default=200, help="pairs in the manifest")
    ap.add_argument("--size", type=int, default=10_000, help="side of each image, in pixels")
    ap.add_argument("--distinct", type=int, default=20, help="pairs actually drawn")
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--data", type=Path, default=Path("/tmp/dragon-bench-batch"),
                    help="where the pairs are written (deleted at the end unless --keep)")
    ap.add_argument("--repeats", type=int, default=3, help="rounds over the configurations")
    ap.add_argument("--generator", choices=("simulate", "blobs"), default=_default_generator(),
                    help="dragon_gpu.simulate (default where it exists) or this script's blobs")
    ap.add_argument("--keep", action="store_true", help="keep the generated pairs")
    args = ap.parse_args(argv)

    args.data.mkdir(parents=True, exist_ok=True)
    try:
        distinct = min(args.distinct, args.pairs)
        manifest, truths = make_colony(args.data, args.pairs, distinct, args.size,
                                       args.generator)
        stored = sum(f.stat().st_size for f in (args.data / "drawn").rglob("*.tif")) / distinct
        print(f"machine: {machine()}")
        print(f"command: python benchmarks/batch.py {' '.join(sys.argv[1:])}")
        cancer = sum(t["dye_in_body_pixels"] * 10 > t["body_pixels"] for t in truths.values())
        print(f"{args.pairs} pairs of {args.size} x {args.size} 1-bit deflate TIFF from "
              f"{args.generator} "
              f"({stored / 1e6:.2f} MB a pair on disk, {cancer} cancer), device cpu; every "
              "row checked against " + ("the generator's exact truth" if args.generator ==
                                        "simulate" else "NumPy counts"))
        walls: dict[str, list[float]] = {name: [] for name in args.configs}
        for _ in range(args.repeats):  # alternate, so a busy spell hits every configuration
            for name in args.configs:
                walls[name].append(run_config(name, manifest, truths, args.data))
        print(f"| configuration | wall s, median of {args.repeats} (incl. start-up) | s per pair | "
              "pairs/s | pairs/hour |")
        print("|---|---|---|---|---|")
        for name in args.configs:
            wall = statistics.median(walls[name])
            print(f"| {name} | {wall:.1f} (runs: {', '.join(f'{w:.1f}' for w in walls[name])}) | "
                  f"{wall / args.pairs:.3f} | {args.pairs / wall:.2f} | "
                  f"{3600 * args.pairs / wall:,.0f} |")
    finally:
        if not args.keep:
            shutil.rmtree(args.data, ignore_errors=True)


if __name__ == "__main__":
    main()
