"""How fast the CUDA engine decides a full-size pair, and how close it gets to the bus.

Run on a machine with a GPU and CuPy::

    python benchmarks/gpu.py --size 100000            # both encodings, GPU 0
    python benchmarks/gpu.py --size 20000 --skip-cpu  # a quick look

It prints, as a table:

1. the ceiling: pinned host-to-device copy bandwidth on one stream (GB/s = 1e9 bytes/s);
2. for each pair (1-bit packed and 8-bit uncompressed TIFF, from the page cache): seconds of
   ``detect --device N``, decoded GB/s, its share of the ceiling, and the CPU engine's seconds
   on the same host with the ratio;
3. the overlap: each stage alone over the same blocks (read into pinned buffers only, copy
   only, kernel only) against the total; a pipeline that overlaps well takes about as long as
   its slowest stage, not the sum.

The pairs are written once under ``--data`` (``dragon_gpu.simulate.generate`` when it can write
uncompressed packed / u8 TIFF, else a synthetic disc-and-stripes pair written strip by strip)
and reused by later runs. Without a usable GPU it says why and exits 0.
"""

from __future__ import annotations

import argparse
import inspect
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from _gpu_machine import machine  # beside this file: the GPU, host and versions line

STRIP_BYTES = 8 << 20  # strips of about 8 MB: one pread each, decoded on every core


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=100_000, help="side of the square pair")
    parser.add_argument("--device", type=int, default=0, help="GPU ordinal")
    parser.add_argument("--encodings", default="packed,u8", help="packed, u8 or both")
    parser.add_argument("--data", default="/tmp/dragon-gpu-bench", help="where pairs are kept")
    parser.add_argument("--repeat", type=int, default=3, help="timed GPU runs (best is shown)")
    parser.add_argument("--memory", default="1GiB", help="detect's --memory")
    parser.add_argument("--skip-cpu", action="store_true", help="do not time the CPU engine")
    parser.add_argument("--clean", action="store_true", help="delete the pairs at the end")
    parser.add_argument("--synthetic", action="store_true",
                        help="write the synthetic pair even where the simulator exists")
    parser.add_argument("--decode-rows", action="store_true",
                        help="then GPU decode vs CPU decode + GPU count on compressed pairs "
                             "(benchmarks/gpu_decode.py)")
    args = parser.parse_args(argv)

    from dragon_gpu.cli import parse_memory
    from dragon_gpu.engines.gpu import probe_device

    why = probe_device(args.device)
    if why is not None:
        print(f"benchmarks/gpu.py: GPU {args.device} is not usable ({why}); nothing to measure.",
              file=sys.stderr)
        return 0
    memory = parse_memory(args.memory)
    print(machine(args.device))
    ceiling = h2d_ceiling(args.device)
    print(f"\npinned host-to-device ceiling, one stream: {ceiling / 1e9:.2f} GB/s\n")

    rows = []
    overlap = []
    for encoding in args.encodings.split(","):
        folder = Path(args.data) / f"{encoding}-{args.size}"
        body, dye = ensure_pair(folder, args.size, encoding, args.synthetic)
        rows.append(time_pair(body, dye, encoding, args, memory, ceiling))
        overlap.append(stages(body, dye, encoding, args.device, memory))
        if args.clean:
            body.unlink()
            dye.unlink()

    print(table(["pair", "decoded GB", "GPU s (best)", "GPU s (median)", "GB/s", "of ceiling",
                 "CPU s", "GPU/CPU speed-up", "counts equal"], rows))
    print()
    print(table(["pair", "read s", "copy s", "kernel s", "sum of stages s", "slowest stage s",
                 "total s", "total / slowest"], overlap))
    if args.decode_rows:
        import gpu_decode  # beside this file

        print()
        return gpu_decode.main(["--size", str(args.size), "--device", str(args.device)])
    return 0


# -- machine and ceiling ------------------------------------------------------------------------
def h2d_ceiling(device: int, nbytes: int = 256 << 20, times: int = 16) -> float:
    """Bytes per second of pinned host-to-device copies of ``nbytes`` on one stream."""
    import cupy
    import cupyx

    with cupy.cuda.Device(device):
        host = cupyx.empty_pinned(nbytes, dtype=np.uint8)
        host[:] = 1
        dev = cupy.empty(nbytes, dtype=cupy.uint8)
        stream = cupy.cuda.Stream(non_blocking=True)
        copy = cupy.cuda.runtime.memcpyAsync
        kind = cupy.cuda.runtime.memcpyHostToDevice
        copy(dev.data.ptr, host.ctypes.data, nbytes, kind, stream.ptr)  # warm-up
        stream.synchronize()
        start = time.perf_counter()
        for _ in range(times):
            copy(dev.data.ptr, host.ctypes.data, nbytes, kind, stream.ptr)
        stream.synchronize()
        return nbytes * times / (time.perf_counter() - start)


# -- the pairs ----------------------------------------------------------------------------------
def ensure_pair(folder: Path, size: int, encoding: str, synthetic_only: bool = False
                ) -> tuple[Path, Path]:
    """``body.tif`` and ``dye.tif`` of ``size`` x ``size`` in ``encoding``, written if missing."""
    body, dye = folder / "body.tif", folder / "dye.tif"
    done = folder / "complete"
    if done.exists():
        return body, dye
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    how = (None if synthetic_only else simulate(folder, size, encoding)) or synthetic(
        folder, size, encoding)
    done.write_text(how)
    print(f"wrote {folder} ({how}) in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return body, dye


def simulate(folder: Path, size: int, encoding: str) -> str | None:
    """Use the realistic generator when it exists and can write uncompressed packed / u8."""
    try:
        from dragon_gpu.simulate import generate
    except ImportError:
        return None
    params = inspect.signature(generate).parameters
    if not {"encoding", "compression", "fmt"} <= set(params):
        return None
    generate(folder, height=size, width=size, seed=1, kind="typical", fmt="tiff",
             encoding=encoding, compression="none")
    return "dragon_gpu.simulate.generate, uncompressed"


def synthetic(folder: Path, size: int, encoding: str) -> str:
    """A disc of body (radius 0.4 * size) and diagonal dye stripes, written strip by strip.

    1-bit files are MINISBLACK: the body is black (clear bits), lit dye white (set bits). 8-bit
    files: body 0 on 255, dye 255 on 0. Rows are built from slices of precomputed rows, so
    writing runs at disk speed.
    """
    import tifffile

    packed = encoding == "packed"
    row_bytes = -(-size // 8) if packed else size
    strip_rows = max(1, STRIP_BYTES // row_bytes)
    centre, radius = size / 2, 0.4 * size
    period = 1024
    stripe = (np.arange(size + period) % period) < period * 0.15  # 15% of each period is lit
    if packed:
        stripe_bytes = np.packbits(stripe[: size + period - period % 8])

    def body_row(r: int, out: np.ndarray) -> None:
        dy = r + 0.5 - centre
        half = np.sqrt(max(0.0, radius * radius - dy * dy))
        c0, c1 = int(np.ceil(centre - half - 0.5)), int(np.floor(centre + half - 0.5)) + 1
        c0, c1 = max(0, c0), min(size, max(c0, c1))
        if packed:
            bits = np.ones(size, dtype=bool)
            bits[c0:c1] = False
            out[:] = np.packbits(bits)
        else:
            out[:] = 255
            out[c0:c1] = 0

    def dye_row(r: int, out: np.ndarray) -> None:
        shift = (r * 8) % period  # a multiple of 8 pixels, so packed rows shift by whole bytes
        if packed:
            out[:] = stripe_bytes[shift // 8: shift // 8 + row_bytes]
        else:
            out[:] = np.where(stripe[shift: shift + size], 255, 0)

    def strips(fill):
        buf = np.empty((strip_rows, row_bytes), dtype=np.uint8)
        for r0 in range(0, size, strip_rows):
            n = min(strip_rows, size - r0)
            for i in range(n):
                fill(r0 + i, buf[i])
            yield buf[:n].tobytes()

    for name, fill in (("body.tif", body_row), ("dye.tif", dye_row)):
        with tifffile.TiffWriter(folder / name, bigtiff=True) as tw:
            tw.write(strips(fill), shape=(size, size), dtype=bool if packed else np.uint8,
                     rowsperstrip=strip_rows, photometric="minisblack", compression=None)
    return "synthetic disc and stripes, uncompressed"


# -- timings ------------------------------------------------------------------------------------
def time_pair(body: Path, dye: Path, encoding: str, args, memory: int, ceiling: float) -> list:
    from dragon_gpu.pipeline import detect

    detect(body, dye, device=str(args.device), memory=memory)  # warm: page cache, kernels
    runs = []
    for _ in range(max(1, args.repeat)):
        result = detect(body, dye, device=str(args.device), memory=memory)
        runs.append(result.seconds)
    nbytes = decoded_nbytes(body) + decoded_nbytes(dye)
    best = min(runs)
    row = [f"{encoding} {args.size}^2", f"{nbytes / 1e9:.2f}", f"{best:.3f}",
           f"{statistics.median(runs):.3f}", f"{nbytes / best / 1e9:.2f}",
           f"{nbytes / best / ceiling:.0%}"]
    if args.skip_cpu:
        return row + ["-", "-", "-"]
    cpu = detect(body, dye, device="cpu", memory=memory)
    same = all(getattr(cpu.counts, k) == getattr(result.counts, k)
               for k in ("body", "dye", "dye_in_body"))
    return row + [f"{cpu.seconds:.2f}", f"{cpu.seconds / best:.1f}x", "yes" if same else "NO"]


def decoded_nbytes(path: Path) -> int:
    from dragon_gpu.io import open_mask

    with open_mask(path) as reader:
        return reader.height * reader.row_nbytes


def stages(body_path: Path, dye_path: Path, encoding: str, device: int, memory: int) -> list:
    """Each stage alone over the engine's blocks, then the whole pipeline."""
    import cupy
    import cupyx

    from dragon_gpu.engines.gpu import CudaEngine, KernelLauncher
    from dragon_gpu.engines.gpu._engine import MAX_BLOCK_NBYTES
    from dragon_gpu.engines.gpu._plan import device_nbytes, max_rows, sub_blocks
    from dragon_gpu.io import open_mask
    from dragon_gpu.pipeline import DetectOptions, encodings, plan_blocks
    from dragon_gpu.streaming import prefetch

    with open_mask(body_path) as body, open_mask(dye_path) as dye:
        body_enc, dye_enc = encodings(body, dye, DetectOptions())
        row_nbytes = body.row_nbytes + dye.row_nbytes
        planned = plan_blocks(body.height, row_nbytes, (body.row_granularity,
                                                        dye.row_granularity), memory)
        cap = max_rows(body.width, row_nbytes, MAX_BLOCK_NBYTES)
        blocks = sub_blocks(planned, min(cap, max(b.rows for b in planned)))
        largest = max(b.rows for b in blocks)

        def pinned(reader, rows):
            return cupyx.empty_pinned((rows, reader.row_items), dtype=reader.dtype)

        start = time.perf_counter()
        for _ in prefetch((body, dye), blocks, depth=2, alloc=pinned):
            pass
        read_s = time.perf_counter() - start

        with cupy.cuda.Device(device):
            stream = cupy.cuda.Stream(non_blocking=True)
            hosts = [pinned(r, largest) for r in (body, dye)]
            devs = [cupy.empty(device_nbytes(largest, e), dtype=cupy.uint8)
                    for e in (body_enc, dye_enc)]
            copy = cupy.cuda.runtime.memcpyAsync
            kind = cupy.cuda.runtime.memcpyHostToDevice
            stream.synchronize()
            start = time.perf_counter()
            for block in blocks:
                for host, dev, enc in zip(hosts, devs, (body_enc, dye_enc)):
                    copy(dev.data.ptr, host.ctypes.data, block.rows * enc.row_nbytes, kind,
                         stream.ptr)
            stream.synchronize()
            copy_s = time.perf_counter() - start

            launch = KernelLauncher(device, body_enc, dye_enc)
            with stream:
                counters = cupy.zeros(3, dtype=cupy.uint64)
                launch(devs[0], devs[1], blocks[0].rows, counters)  # warm-up
                stream.synchronize()
                start = time.perf_counter()
                for block in blocks:
                    launch(devs[0], devs[1], block.rows, counters)
                stream.synchronize()
            kernel_s = time.perf_counter() - start

        engine = CudaEngine([device])
        start = time.perf_counter()
        engine.count_pair(body, body_enc, dye, dye_enc, planned)
        total_s = time.perf_counter() - start
    slowest = max(read_s, copy_s, kernel_s)
    return [f"{encoding} ({len(blocks)} blocks)", f"{read_s:.3f}", f"{copy_s:.3f}",
            f"{kernel_s:.3f}", f"{read_s + copy_s + kernel_s:.3f}", f"{slowest:.3f}",
            f"{total_s:.3f}", f"{total_s / slowest:.2f}"]


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]

    def line(cells):
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"

    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|",
                      *map(line, rows)])


if __name__ == "__main__":
    sys.exit(main())
