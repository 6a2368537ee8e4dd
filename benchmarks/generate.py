"""Time ``dragon-gpu generate`` at several sizes: seconds, peak RSS, bytes on disk.

Each size runs in its own process (``python -m dragon_gpu generate``), so the peak resident set
size is that run's alone (``os.wait4``). The data is written under ``--workdir`` and deleted
after each run. Run the full-size rows alone on the machine::

    flock /tmp/dragon-heavy.lock python benchmarks/generate.py --sizes 2048 10000 30000 100000

Prints a Markdown table and the machine it ran on.
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import machine  # noqa: E402


def run(size: int, kind: str, fmt: str, seed: int, workdir: str, extra: list[str]) -> dict:
    out = tempfile.mkdtemp(prefix=f"gen{size}-", dir=workdir)
    cmd = [sys.executable, "-m", "dragon_gpu", "generate", out, "--size", str(size), "--seed",
           str(seed), "--kind", kind, "--format", fmt, "--json", "--quiet", *extra]
    try:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        stdout, stderr = proc.stdout.read(), proc.stderr.read()  # before wait4: no full pipe
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise SystemExit(f"generate failed ({proc.returncode}): {stderr.decode()[-2000:]}")
        truth = json.loads(stdout)
        disk = sum(os.path.getsize(os.path.join(out, n)) for n in os.listdir(out))
        return {"size": size, "kind": truth["drawn_kind"], "format": fmt, "seconds": seconds,
                "peak_rss": usage.ru_maxrss * 1024, "disk": disk, "truth": truth}
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[2048, 10000, 30000, 100000])
    ap.add_argument("--kinds", nargs="+", default=["typical"])
    ap.add_argument("--format", default="tiff", choices=["tiff", "hdf5"])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workdir", default=os.environ.get("DRAGON_BENCH_DIR", tempfile.gettempdir()))
    ap.add_argument("extra", nargs="*", help="more generate options, after --")
    args = ap.parse_args(argv)
    os.makedirs(args.workdir, exist_ok=True)
    print(f"machine: {machine()}")
    print(f"command: python -m dragon_gpu generate OUT --size N --seed {args.seed} --kind K "
          f"--format {args.format} {' '.join(args.extra)}".rstrip())
    print()
    print("| size | kind | format | seconds | Mpixel/s | peak RSS (MiB) | bytes on disk | "
          "body pixels | dye in body |")
    print("|---:|---|---|---:|---:|---:|---:|---:|---:|")
    for kind in args.kinds:
        for size in args.sizes:
            r = run(size, kind, args.format, args.seed, args.workdir, args.extra)
            t = r["truth"]
            print(f"| {size} | {r['kind']} | {r['format']} | {r['seconds']:.1f} | "
                  f"{size * size / r['seconds'] / 1e6:.0f} | {r['peak_rss'] / 2**20:.0f} | "
                  f"{r['disk']:,} | {t['body_pixels']:,} | {t['dye_in_body_pixels']:,} |",
                  flush=True)


if __name__ == "__main__":
    main()
