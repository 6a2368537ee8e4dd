"""GPU decode against CPU decode + GPU count, against the CPU engine, on compressed pairs.

Run on a machine with a GPU, CuPy and nvCOMP (``pip install '.[gpu]'``; add ``.[dali]`` for the
DALI row)::

    python benchmarks/gpu_decode.py --size 100000
    python benchmarks/gpu.py --size 100000 --decode-rows   # the same rows after gpu.py's own

Pairs (written once under ``--data`` with ``dragon_gpu.simulate.generate``, then read from the
page cache): a typical 1-bit deflate TIFF pair, a typical 8-bit gzip HDF5 pair, a noisy 8-bit
deflate TIFF pair (``speckle`` at its 0.01 maximum: compresses less), an 8-bit zstd TIFF pair and an 8-bit
LZ4 HDF5 pair. For each it prints the seconds of ``detect --decode gpu`` (nvCOMP; and DALI for
LZ4), of ``--decode cpu`` on the same GPU (CPU inflate on every host core + GPU count), of the
CPU engine, and whether all counts agree. Targets (one H100/H200): the 1-bit pair <= 0.25 s,
the 8-bit gzip pair <= 0.5 s, the noisy pair >= 3x the CPU-decode path. Without a usable GPU or
nvCOMP it says why and exits 0.

``--host-only`` runs anywhere (no GPU): per pair, the bytes that cross the bus each way (the
compressed segments the GPU path copies, the decoded rows the CPU-decode path copies), the
seconds of today's CPU decode of every block (all cores), and the seconds of the GPU path's
host work over the same blocks (``preadv`` of the compressed segments into one buffer and their
framing), which is all the CPU does once the GPU inflates.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

#: name -> (generate() keywords, decoders to time)
PAIRS = {
    "1-bit deflate TIFF": (dict(fmt="tiff", encoding="packed", compression="deflate"),
                           ["nvcomp"]),
    "8-bit gzip HDF5": (dict(fmt="hdf5", encoding="u8", compression="gzip"), ["nvcomp"]),
    "8-bit deflate TIFF noisy": (dict(fmt="tiff", encoding="u8", compression="deflate",
                                       speckle=0.01), ["nvcomp"]),
    "8-bit zstd TIFF": (dict(fmt="tiff", encoding="u8", compression="zstd"), ["nvcomp"]),
    "8-bit LZ4 HDF5": (dict(fmt="hdf5", encoding="u8", compression="lz4"), ["nvcomp", "dali"]),
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=100_000, help="side of the square pair")
    parser.add_argument("--device", type=int, default=0, help="GPU ordinal")
    parser.add_argument("--data", default="/tmp/dragon-gpu-bench-decode", help="where pairs are")
    parser.add_argument("--pairs", default=",".join(PAIRS), help="comma-separated pair names")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each (median shown)")
    parser.add_argument("--memory", default="4GiB", help="detect's --memory")
    parser.add_argument("--skip-cpu", action="store_true", help="do not time the CPU engine")
    parser.add_argument("--host-only", action="store_true",
                        help="no GPU: bytes moved, CPU decode vs the GPU path's host work")
    args = parser.parse_args(argv)
    return host_only(args) if args.host_only else run(args)


def host_only(args) -> int:
    import platform

    import numpy as np

    from dragon_gpu.cli import parse_memory
    from dragon_gpu.engines.gpu.decode import plan_input
    from dragon_gpu.engines.gpu.decode._plan import frame
    from dragon_gpu.engines.gpu.decode._stream import _read_segments
    from dragon_gpu.io._decode import usable_cores
    from dragon_gpu.pipeline import DetectOptions, open_pair

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor())
    print(f"host: {cpu}, {usable_cores()} usable cores; Python {platform.python_version()}")
    opts = DetectOptions(memory=parse_memory(args.memory))
    rows = []
    for name in args.pairs.split(","):
        kwargs, _ = PAIRS[name]
        body, dye = ensure_pair(Path(args.data), args.size, name, kwargs)
        with open_pair(body, dye, opts) as opened:
            readers = (opened.body, opened.dye)
            plans = [plan_input(r)[0] for r in readers]
            decoded = sum(r.height * r.row_nbytes for r in readers)
            stored = sum(int(p.counts.sum()) for p in plans)
            cpu_s, host_s = [], []
            for _ in range(max(1, args.repeat)):
                start = time.perf_counter()
                for b in opened.blocks:
                    for r in readers:
                        r.read_rows(b.row_start, b.row_stop)
                cpu_s.append(time.perf_counter() - start)
                start = time.perf_counter()
                for b in opened.blocks:
                    for p in plans:
                        batch = p.batch(b.row_start, b.row_stop)
                        ring = np.empty(max(1, batch.comp_nbytes), np.uint8)
                        _read_segments(p.fd, batch, ring)
                        frame(p, batch, ring)
                host_s.append(time.perf_counter() - start)
        cpu_m, host_m = statistics.median(cpu_s), statistics.median(host_s)
        rows.append([name, f"{decoded / 1e9:.3f}", f"{stored / 1e9:.4f}", f"{cpu_m:.3f}",
                     f"{host_m:.4f}", f"{cpu_m / host_m:.0f}x"])
    header = ["pair", "decoded GB (CPU path copies)", "compressed GB (GPU path copies)",
              "CPU decode s (median)", "GPU path host work s (median)", "ratio"]
    _print_table(header, rows)
    return 0


def _print_table(header, rows) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    for line in [header, ["-" * w for w in widths], *rows]:
        print(" | ".join(str(c).ljust(w) for c, w in zip(line, widths)))


def run(args) -> int:
    from dragon_gpu.cli import parse_memory
    from dragon_gpu.engines.gpu import probe_device
    from dragon_gpu.engines.gpu.decode import _missing

    why = probe_device(args.device) or _missing("nvcomp")
    if why:
        print(f"benchmarks/gpu_decode.py: cannot measure ({why}).", file=sys.stderr)
        return 0
    memory = parse_memory(args.memory)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _gpu_machine import machine  # GPU, host CPU model and core count, CuPy and CUDA versions

    print(machine(args.device))
    rows = []
    for name in args.pairs.split(","):
        kwargs, decoders = PAIRS[name]
        body, dye = ensure_pair(Path(args.data), args.size, name, kwargs)
        rows.extend(time_pair(name, body, dye, decoders, args, memory))
    _print_table(["pair", "decode", "seconds (median)", "seconds (best)",
                  "vs CPU-decode + GPU", "vs CPU engine", "counts equal"], rows)
    return 0


def ensure_pair(root: Path, size: int, name: str, kwargs: dict) -> tuple[Path, Path]:
    from dragon_gpu.simulate import generate

    folder = root / f"{name.replace(' ', '_').replace(',', '')}-{size}"
    suffix = ".h5" if kwargs["fmt"] == "hdf5" else ".tif"
    body, dye = folder / f"body{suffix}", folder / f"dye{suffix}"
    if not (folder / "complete").exists():
        start = time.perf_counter()
        generate(folder, height=size, width=size, seed=1, kind="typical", **kwargs)
        (folder / "complete").write_text(name)
        print(f"wrote {folder} in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return body, dye


def time_pair(name, body, dye, decoders, args, memory) -> list[list[str]]:
    from dragon_gpu.pipeline import detect

    def timed(**kw):
        result = detect(body, dye, memory=memory, **kw)  # warm: page cache, kernels
        runs = []
        for _ in range(max(1, args.repeat)):
            result = detect(body, dye, memory=memory, **kw)
            runs.append(result.seconds)
        return result, statistics.median(runs), min(runs)

    gpu = str(args.device)
    cpu_decode, cpu_decode_s, _ = timed(device=gpu, decode="cpu")
    engine = None if args.skip_cpu else timed(device="cpu")
    rows = []
    for decoder in decoders:
        result, median, best = timed(device=gpu, decode="gpu", gpu_decoder=decoder)
        same = _counts(result) == _counts(cpu_decode) and (
            engine is None or _counts(result) == _counts(engine[0]))
        rows.append([name, f"gpu ({decoder})", f"{median:.3f}", f"{best:.3f}",
                     f"{cpu_decode_s / median:.1f}x",
                     "-" if engine is None else f"{engine[1] / median:.1f}x",
                     "yes" if same else "NO"])
    rows.append([name, "cpu + gpu count", f"{cpu_decode_s:.3f}", "-", "1.0x",
                 "-" if engine is None else f"{engine[1] / cpu_decode_s:.1f}x", "-"])
    if engine is not None:
        rows.append([name, "cpu engine", f"{engine[1]:.3f}", f"{engine[2]:.3f}", "-", "1.0x",
                     "-"])
    return rows


def _counts(result):
    return result.counts.body, result.counts.dye, result.counts.dye_in_body


if __name__ == "__main__":
    sys.exit(main())
