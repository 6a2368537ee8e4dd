"""The storage table: one typical pair in each representation, with write and detect costs.

For each representation (1-bit TIFF deflate/LZW/PackBits/zstd/none, packed HDF5 gzip/lz4/zstd,
8-bit HDF5 gzip) the same pair (same seed) is generated directly in that representation
(``dragon-gpu generate``: render + compress + write), then detected on the CPU
(``dragon-gpu detect --device cpu``); each step runs in its own process, timed, with its peak
RSS. Counts are checked against truth.json. Data is deleted after each row.

The worst case of each representation is measured on random noise (every pixel an independent
coin flip: no codec can shrink it), by compressing full-width segments with the writers' own
encoders and scaling to the whole image. For 8-bit files two worst cases are given: a mask
stored as 0/255 (what generate and convert write) and arbitrary gray values.

Run alone on the machine::

    flock /tmp/dragon-heavy.lock python benchmarks/storage.py --size 100000 --workdir DIR
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from generate import machine  # noqa: E402

#: (label, format, encoding, compression)
REPRESENTATIONS = [
    ("1-bit TIFF deflate", "tiff", "packed", "deflate"),
    ("1-bit TIFF LZW", "tiff", "packed", "lzw"),
    ("1-bit TIFF PackBits", "tiff", "packed", "packbits"),
    ("1-bit TIFF zstd", "tiff", "packed", "zstd"),
    ("1-bit TIFF none", "tiff", "packed", "none"),
    ("packed HDF5 gzip", "hdf5", "packed", "gzip"),
    ("packed HDF5 lz4", "hdf5", "packed", "lz4"),
    ("packed HDF5 zstd", "hdf5", "packed", "zstd"),
    ("8-bit HDF5 gzip", "hdf5", "u8", "gzip"),
]


def _timed(cmd: list[str]) -> tuple[float, int, str]:
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # Read before waiting (a full pipe would block the child), then reap it with wait4 for
    # its own resource usage.
    out, err = proc.stdout.read().decode(), proc.stderr.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({code}): {err[-2000:]}")
    return seconds, usage.ru_maxrss * 1024, out


def measure(label, fmt, encoding, compression, size, seed, workdir) -> dict:
    out = tempfile.mkdtemp(prefix="storage-", dir=workdir)
    try:
        gen_s, gen_rss, stdout = _timed([
            sys.executable, "-m", "dragon_gpu", "generate", out, "--size", str(size), "--seed",
            str(seed), "--format", fmt, "--encoding", encoding, "--compression", compression,
            "--json", "--quiet"])
        truth = json.loads(stdout)
        suffix = ".tif" if fmt == "tiff" else ".h5"
        files = [os.path.join(out, f"body{suffix}"), os.path.join(out, f"dye{suffix}")]
        disk = sum(os.path.getsize(f) for f in files)
        det_s, det_rss, stdout = _timed([sys.executable, "-m", "dragon_gpu", "detect", *files,
                                         "--device", "cpu", "--json", "--quiet"])
        result = json.loads(stdout)
        keys = ("body_pixels", "dye_in_body_pixels", "dye_pixels")
        if any(result[k] != truth[k] for k in keys):
            raise SystemExit(f"{label}: detect disagrees with the truth")
        return {"label": label, "size": size, "disk": disk, "generate_s": gen_s,
                "generate_rss": gen_rss, "detect_s": det_s, "detect_rss": det_rss,
                "detect_inner_s": result["seconds"], "truth": truth}
    finally:
        shutil.rmtree(out, ignore_errors=True)


def worst_case(fmt, encoding, compression, size, segments=4) -> dict:
    """Bytes of one size x size image of random noise, from full-width noise segments."""
    from dragon_gpu.io.writers import AtomicOutput, Hdf5RowWriter, TiffRowWriter

    rng = np.random.default_rng(0)
    packed = encoding == "packed"
    tmpdir = tempfile.mkdtemp()
    try:
        out = AtomicOutput(os.path.join(tmpdir, "probe"))
        if fmt == "tiff":
            w = TiffRowWriter(out.tmp, (size, size), bits=1 if packed else 8,
                              compression=compression)
        else:
            w = Hdf5RowWriter(out.tmp, (size, size), packed=packed, compression=compression)
        rows = w.segment_rows
        variants = {"noise": None} if packed else {"noise 0/255": 255, "noise 0-255": None}
        result = {}
        for name, top in variants.items():
            raw = stored = 0
            for i in range(min(segments, w.n_segments)):
                n = min(rows, size - i * rows)
                if packed:
                    seg = rng.integers(0, 256, (n, w.row_items), dtype=np.uint8)
                elif top == 255:
                    seg = (rng.integers(0, 2, (n, size), dtype=np.uint8) * np.uint8(255))
                else:
                    seg = rng.integers(0, 256, (n, size), dtype=np.uint8)
                data = w.encode(i * rows, seg)
                raw += seg.nbytes
                stored += len(data) if isinstance(data, (bytes, bytearray)) else data.nbytes
            total_raw = size * w.row_items
            result[name] = (int(stored / raw * total_raw), stored / raw)
        w.abort()
        out.discard()
        return result
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=100_000)
    ap.add_argument("--u8-size", type=int, default=None,
                    help="side for the 8-bit row (default --size; 8-bit at 100k is 10 GB raw a "
                         "file)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--only", nargs="*", help="labels to run (default all)")
    ap.add_argument("--workdir", default=os.environ.get("DRAGON_BENCH_DIR", tempfile.gettempdir()))
    args = ap.parse_args(argv)
    os.makedirs(args.workdir, exist_ok=True)
    print(f"machine: {machine()}")
    print(f"pair: generate --seed {args.seed} (typical), side {args.size}"
          + (f", 8-bit row at side {args.u8_size}" if args.u8_size else ""))
    print()
    print("| representation | side | bytes on disk (pair) | bits/pixel | generate s | "
          "generate peak RSS MiB | detect s (process) | detect s (counting) | "
          "detect peak RSS MiB | worst case, one image |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for label, fmt, encoding, compression in REPRESENTATIONS:
        if args.only and label not in args.only:
            continue
        size = args.u8_size if (encoding == "u8" and args.u8_size) else args.size
        r = measure(label, fmt, encoding, compression, size, args.seed, args.workdir)
        worst = worst_case(fmt, encoding, compression, args.size)
        worst_text = "; ".join(f"{k}: {v / 1e9:.3f} GB ({ratio:.4f} x raw)"
                               for k, (v, ratio) in worst.items())
        if encoding == "u8" and size != args.size:
            worst_text += f" (at side {args.size})"
        bpp = 8 * r["disk"] / (2 * size * size)
        print(f"| {label} | {size} | {r['disk']:,} | {bpp:.4f} | {r['generate_s']:.1f} | "
              f"{r['generate_rss'] / 2**20:.0f} | {r['detect_s']:.1f} | "
              f"{r['detect_inner_s']:.1f} | {r['detect_rss'] / 2**20:.0f} | {worst_text} |",
              flush=True)


if __name__ == "__main__":
    main()
