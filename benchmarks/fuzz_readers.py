"""Long fuzz run of the readers: N mutated TIFF and HDF5 files, each detected in a forked child.

    python benchmarks/fuzz_readers.py N [--seed S] [--out DIR] [--timeout SECONDS] [--keep-counted]

Each example mutates a small valid file (striped/tiled, 1/8/16-bit, several codecs; HDF5
contiguous/chunked/gzip/lzf/shuffle/bool), then a forked child runs detection on it against
its valid original. A clean DragonError or a count equal to the independent recount (tifffile
or h5py + NumPy) is fine; a wrong count, another exception, a crash (signal) or a hang
(no answer in --timeout seconds) is a finding, saved under --out with the traceback. Prints a
table of outcomes; exits 1 when there are findings. Findings small enough belong in
tests/data/corpus/ (see tests/test_corpus.py).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the project root, for the tests' helpers

from tests.helpers import craft, fuzz  # noqa: E402


def run_one(mutated: Path, base: str, pixels, timeout: float, report: Path) -> str:
    """Outcome of one example, judged in a forked child so crashes and hangs are contained."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read)
        code, outcome = 0, "error"
        try:
            outcome = fuzz.judge(str(mutated), base, pixels, seconds=timeout)
        except AssertionError:
            outcome = "hang" if "no answer" in traceback.format_exc() else "wrong"
            report.write_text(traceback.format_exc())
        except BaseException:
            outcome = "exception"
            report.write_text(traceback.format_exc())
        os.write(write, outcome.encode())
        os._exit(code)
    os.close(write)
    deadline = time.monotonic() + timeout + 10
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            os.close(read)
            return "hang"
        time.sleep(0.002)
    outcome = os.read(read, 64).decode() or "crash"
    os.close(read)
    if os.WIFSIGNALED(status):
        report.write_text(f"killed by signal {os.WTERMSIG(status)}\n")
        return "crash"
    return outcome


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int, help="number of mutated files")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--out", default=None, help="folder for findings (default: a temp dir)")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds before a hang")
    parser.add_argument("--keep-counted", action="store_true",
                        help="also save files that were counted but could not be recounted")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="dragon-fuzz-"))
    out = Path(args.out) if args.out else work / "findings"
    out.mkdir(parents=True, exist_ok=True)
    bases = [(p, Path(p).read_bytes(), px, ".tif") for p, px in craft.valid_tiffs(work).items()]
    bases += [(p, Path(p).read_bytes(), px, ".h5") for p, px in craft.valid_hdf5(work).items()]
    rng = random.Random(args.seed)
    outcomes: Counter = Counter()
    by_kind: Counter = Counter()
    t0 = time.perf_counter()
    for i in range(args.n):
        path, data, pixels, suffix = rng.choice(bases)
        ops = fuzz.random_ops(rng, len(data))
        mutated = work / f"example{suffix}"
        mutated.write_bytes(fuzz.mutate(data, ops))
        report = out / f"{i:06d}-{Path(path).stem}.txt"
        outcome = run_one(mutated, path, pixels, args.timeout, report)
        outcomes[outcome] += 1
        by_kind[(suffix, outcome)] += 1
        if outcome in ("wrong", "exception", "crash", "hang"):
            keep = out / f"{i:06d}-{Path(path).stem}{suffix}"
            keep.write_bytes(mutated.read_bytes())
            with open(report, "a") as fh:
                fh.write(f"\nbase: {path}\nops: {ops}\n")
            print(f"finding {i}: {outcome}: {keep}", flush=True)
        elif outcome == "counted" and args.keep_counted:
            # Counted, but tifffile/h5py could not read it to check: worth a look.
            keep = out / "counted" / f"{i:06d}-{Path(path).stem}{suffix}"
            keep.parent.mkdir(exist_ok=True)
            keep.write_bytes(mutated.read_bytes())
    seconds = time.perf_counter() - t0
    print(f"\n{args.n} examples, seed {args.seed}, {seconds:.1f} s "
          f"({platform.processor() or platform.machine()}, {os.cpu_count()} cores)")
    print(f"{'format':<8}{'outcome':<12}{'count':>8}")
    for (suffix, outcome), count in sorted(by_kind.items()):
        print(f"{suffix[1:]:<8}{outcome:<12}{count:>8}")
    bad = sum(outcomes[k] for k in ("wrong", "exception", "crash", "hang"))
    print(f"findings: {bad}" + (f" (saved in {out})" if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
