"""What the safety checks cost: opening a many-chunk HDF5, and refusing hostile TIFF headers.

    python benchmarks/safety_costs.py [--chunks-side 32768] [--folder DIR]

Prints two tables: open_mask time (best of 5) on a uint8 HDF5 of side x side in 64 x 64 gzip
chunks; and, for hand-made hostile TIFFs, the library's time and peak Python allocation
(tracemalloc) to refuse them, and the whole command's time and exit code.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
import tracemalloc
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the root, for tests.helpers

from tests.helpers import craft  # noqa: E402


def open_cost(folder: Path, side: int) -> None:
    import h5py
    import numpy as np

    from dragon_gpu.io import open_mask

    path = folder / f"chunks-{side}.h5"
    if not path.exists():
        with h5py.File(path, "w") as f:
            ds = f.create_dataset("mask", shape=(side, side), chunks=(64, 64), dtype=np.uint8,
                                  compression="gzip")
            slab = np.zeros((64, side), np.uint8)
            for r in range(0, side, 64):
                ds[r:r + 64] = slab
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        open_mask(path).close()
        best = min(best, time.perf_counter() - t0)
    chunks = (side // 64) ** 2
    print(f"{'dataset':<34}{'chunks':>10}{'open_mask ms':>14}{'us/chunk':>10}")
    print(f"{f'{side} x {side} uint8, 64 x 64 gzip':<34}{chunks:>10}{best * 1e3:>14.1f}"
          f"{best * 1e6 / chunks:>10.2f}\n")


def refusals(folder: Path) -> None:
    from dragon_gpu.errors import DragonError
    from dragon_gpu.pipeline import detect

    cases = {
        "TIFF 1e6 x 1e6, 16-byte deflate strip":
            craft.tiff(10**6, 10**6, [b"\0" * 16], compression=8),
        "TIFF IFD pointing to itself":
            craft.tiff(29, 37, [bytes(37 * 29)], next_ifd="self"),
        "TIFF 256x256, deflate bomb (128 MiB)":
            craft.tiff(256, 256, [zlib.compress(bytes(128 << 20), 9)], compression=8),
        "TIFF 16x16 in a 32768 x 32768 tile":
            craft.tiff(16, 16, [zlib.compress(bytes(4 << 20), 9) * 300], tile=(32768, 32768),
                       compression=8),
    }
    print(f"{'input':<40}{'library s':>10}{'peak MiB':>10}{'command s':>10}{'exit':>6}")
    for i, (name, data) in enumerate(cases.items()):
        path = folder / f"hostile-{i}.tif"
        path.write_bytes(data)
        tracemalloc.start()
        t0 = time.perf_counter()
        try:
            detect(path, path, device="cpu")
        except DragonError:
            pass
        seconds = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        t0 = time.perf_counter()
        code = subprocess.run([sys.executable, "-m", "dragon_gpu", "detect", str(path), str(path),
                               "--device", "cpu"], capture_output=True).returncode
        print(f"{name:<40}{seconds:>10.4f}{peak:>10.2f}{time.perf_counter() - t0:>10.2f}"
              f"{code:>6}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks-side", type=int, default=32768, help="side of the HDF5 image")
    parser.add_argument("--folder", default=None, help="where to write the files (default: temp)")
    args = parser.parse_args()
    folder = Path(args.folder or tempfile.mkdtemp(prefix="dragon-safety-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"{platform.machine()}, {os.cpu_count()} cores\n")
    open_cost(folder, args.chunks_side)
    refusals(folder)


if __name__ == "__main__":
    main()
