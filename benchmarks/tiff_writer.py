"""Time the TIFF writer against tifffile.TiffWriter on the same 1-bit image (issue 12).

The body of a generated pair is read back in row blocks and written again three ways, each
best of ``--repeat`` runs, the file deleted after each:

* ``dragon-gpu``: :func:`dragon_gpu.io.writers.write_tiff` (strips compressed on the writer's
  pool, header, strips, then the IFD);
* ``tifffile bytes``: ``TiffWriter.write`` fed an iterator of strips compressed on the same pool
  (tifffile writes the tags; the compression is still ours);
* ``tifffile tiles``: ``TiffWriter.write`` fed 1024 x 1024 tiles with ``maxworkers`` (tifffile
  compresses; for a non-tiled image it takes only whole pages, never strips, from an iterator,
  and it takes one value a pixel, so the packed rows are unpacked first);

all three through :class:`~dragon_gpu.io._output.AtomicOutput` (temporary name, fsync, rename).

Run::

    python benchmarks/tiff_writer.py --size 40000 --workdir /tmp/bench
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import machine  # noqa: E402

from dragon_gpu.io._output import AtomicOutput  # noqa: E402

BLOCK_ROWS = 4096
TILE = 1024


def _blocks(path):
    from dragon_gpu.io import open_mask

    with open_mask(path) as reader:
        for r in range(0, reader.height, BLOCK_ROWS):
            yield reader.read_rows(r, min(reader.height, r + BLOCK_ROWS))


def ours(src, dst, shape, workers):
    from dragon_gpu.io.writers import write_tiff

    write_tiff(dst, _blocks(src), shape, bits=1, compression="deflate", workers=workers)


def tifffile_bytes(src, dst, shape, workers):
    import tifffile

    from dragon_gpu.io._decode import ordered_map
    from dragon_gpu.io._segment_writer import _rechunk
    from dragon_gpu.io.writers import TiffRowWriter

    seg = TiffRowWriter(dst + ".probe", shape, bits=1).segment_rows
    os.unlink(dst + ".probe")
    rows = -(-shape[1] // 8)
    strips = _rechunk(_blocks(src), seg, shape[0], rows, np.dtype(np.uint8))
    import imagecodecs

    encoded = ordered_map(lambda item: imagecodecs.deflate_encode(item[1], level=6), strips,
                          workers)
    with AtomicOutput(dst) as out, tifffile.TiffWriter(out.tmp, bigtiff=False) as tw:
        tw.write(encoded, shape=shape, dtype=bool, compression="deflate", rowsperstrip=seg,
                 photometric="minisblack")


def tifffile_tiles(src, dst, shape, workers):
    import tifffile

    height, width = shape

    def tiles():
        band = np.zeros((TILE, -(-width // TILE) * TILE), dtype=bool)
        pending = np.empty((0, -(-width // 8)), np.uint8)
        blocks = _blocks(src)
        for r in range(0, height, TILE):
            while pending.shape[0] < min(TILE, height - r):
                pending = np.concatenate([pending, next(blocks)])
            n = min(TILE, height - r)
            band[:] = False
            band[:n, :width] = np.unpackbits(pending[:n], axis=1, count=width).view(bool)
            pending = pending[n:]
            for c in range(0, width, TILE):
                yield band[:, c:c + TILE].copy()  # tifffile encodes it later, on a thread

    with AtomicOutput(dst) as out, tifffile.TiffWriter(out.tmp, bigtiff=False) as tw:
        tw.write(tiles(), shape=shape, dtype=bool, compression="deflate",
                 compressionargs={"level": 6}, tile=(TILE, TILE), maxworkers=workers,
                 photometric="minisblack")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=40000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--workdir", default="/tmp/dragon-tiff-writer")
    args = ap.parse_args(argv)
    os.makedirs(args.workdir, exist_ok=True)
    src_dir = os.path.join(args.workdir, "src")
    subprocess.run([sys.executable, "-m", "dragon_gpu", "generate", src_dir, "--size",
                    str(args.size), "--seed", "1", "--force", "--quiet"], check=True)
    src = os.path.join(src_dir, "body.tif")
    shape = (args.size, args.size)
    print(f"machine: {machine()}")
    print(f"input: body.tif of `dragon-gpu generate --size {args.size} --seed 1` "
          f"({os.path.getsize(src):,} bytes), read back in blocks of {BLOCK_ROWS} rows; "
          f"{args.workers} workers; best of {args.repeat}")
    print()
    print("| writer | best s | all s | bytes |")
    print("|---|---:|---|---:|")
    for name, fn in (("read only", None), ("dragon-gpu write_tiff", ours),
                     ("tifffile, our compressed strips", tifffile_bytes),
                     ("tifffile tiles, maxworkers", tifffile_tiles)):
        times, size = [], 0
        for _ in range(args.repeat):
            dst = os.path.join(args.workdir, "out.tif")
            t0 = time.perf_counter()
            if fn is None:
                for _block in _blocks(src):
                    pass
            else:
                fn(src, dst, shape, args.workers)
            times.append(time.perf_counter() - t0)
            if fn is not None:
                size = os.path.getsize(dst)
                os.unlink(dst)
        print(f"| {name} | {min(times):.2f} | {', '.join(f'{t:.2f}' for t in times)} | "
              f"{size:,} |", flush=True)
    shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
