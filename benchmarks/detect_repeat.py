"""Repeat one CPU detect of an existing pair in one process: min and median seconds.

For A/B runs between checkouts on a noisy machine, alternating::

    PYTHONPATH=CHECKOUT python benchmarks/detect_repeat.py PAIR_FOLDER --repeat 7

PAIR_FOLDER holds body.tif and dye.tif. Prints the package path used, so a run names its version.
"""

from __future__ import annotations

import argparse
import statistics
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pair", help="folder with body.tif and dye.tif")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)

    import dragon_gpu
    from dragon_gpu import detect

    body, dye = f"{args.pair}/body.tif", f"{args.pair}/dye.tif"
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        detect(body, dye, device="cpu")
        times.append(time.perf_counter() - start)
    print(f"{dragon_gpu.__file__}: min {min(times):.3f} s, median {statistics.median(times):.3f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
