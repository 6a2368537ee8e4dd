"""Time ``dragon-gpu preview`` and ``detect --preview`` against ``detect`` alone.

For each size, a realistic pair is generated once (``dragon-gpu generate``, 1-bit TIFF), then
``detect``, ``detect --preview`` and ``preview`` each run in their own process, so the peak
resident set size is that run's alone (``os.wait4``). The counts of every run are checked against
truth.json. Data lives under ``--workdir`` and is deleted afterwards. Run it alone on the machine::

    flock /tmp/dragon-heavy.lock python benchmarks/preview.py --sizes 10000 30000 100000

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


def timed(args: list[str]) -> tuple[float, int, str]:
    """(seconds, peak RSS bytes, stdout) of ``python -m dragon_gpu ARGS``."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "dragon_gpu", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    stdout, stderr = proc.stdout.read(), proc.stderr.read()  # before wait4: no full pipe
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(args)} failed: {stderr.decode()[-2000:]}")
    return seconds, usage.ru_maxrss * 1024, stdout.decode()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10000, 30000, 100000])
    ap.add_argument("--max-side", type=int, default=2048)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--workdir", default=os.environ.get("DRAGON_BENCH_DIR", tempfile.gettempdir()))
    args = ap.parse_args(argv)
    os.makedirs(args.workdir, exist_ok=True)
    print(f"machine: {machine()}")
    print(f"pairs: python -m dragon_gpu generate OUT --size N --seed {args.seed} (1-bit TIFF)")
    print()
    print("| size | command | seconds | Gpixel/s | peak RSS (MiB) | picture |")
    print("|---:|---|---:|---:|---:|---|")
    for size in args.sizes:
        out = tempfile.mkdtemp(prefix=f"preview{size}-", dir=args.workdir)
        try:
            _, _, text = timed(["generate", out, "--size", str(size), "--seed", str(args.seed),
                                "--json", "--quiet"])
            truth = json.loads(text)
            body, dye = os.path.join(out, "body.tif"), os.path.join(out, "dye.tif")
            png = os.path.join(out, "preview.png")
            runs = {
                "detect": ["detect", body, dye, "--json", "-q", "--device", args.device],
                "detect --preview": ["detect", body, dye, "--json", "-q", "--device",
                                     args.device, "--preview", png, "--max-side",
                                     str(args.max_side)],
                "preview": ["preview", body, dye, "-o", png, "-q", "--max-side",
                            str(args.max_side)],
            }
            for name, cmd in runs.items():
                seconds, rss, text = timed(cmd)
                picture = ""
                keys = ("body_pixels", "dye_in_body_pixels", "dye_outside_body_pixels")
                if name == "preview":
                    lines = text.splitlines()
                    picture = lines[0].split(": ", 1)[1]  # "W x H pixels, one pixel = s x s ..."
                    want = (f"body {truth[keys[0]]:,} px   dye in body {truth[keys[1]]:,} px   "
                            f"dye outside body {truth[keys[2]]:,} px")
                    ok = want in lines
                else:
                    got = json.loads(text)
                    ok = all(got[k] == truth[k] for k in keys)
                if not ok:
                    raise SystemExit(f"{name}: counts differ from truth.json")
                print(f"| {size} | `{name}` | {seconds:.1f} | {size * size / seconds / 1e9:.2f} "
                      f"| {rss / 2**20:.0f} | {picture} |", flush=True)
        finally:
            shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
