"""Compile every kernel of the CUDA engine with CuPy's NVRTC, on a machine without a GPU.

Checks what ``pip install 'dragon-gpu[gpu]'`` promises a host with only the NVIDIA driver: CuPy
finds an NVRTC (the pip wheel, not a system CUDA), and every ``kernels/*.cu`` file the engine
uses compiles to a cubin for the given architecture that holds each kernel the engine launches.

    python tools/check_nvrtc.py [--arch 90] [--allow-system-nvrtc]

Prints one line per kernel file and the NVRTC library used; exits 1 on any failure. No device
is needed: CuPy's own NVRTC compile path is used, with the architecture given instead of
queried from a device (the one step of ``cupy.RawModule`` that needs a GPU).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def loaded_nvrtc() -> list[str]:
    """Paths of the NVRTC libraries this process has loaded (Linux)."""
    with open("/proc/self/maps", encoding="utf-8") as maps:
        return sorted({line.split()[-1] for line in maps if "libnvrtc.so" in line})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="90", help="compute capability, e.g. 80 or 90")
    parser.add_argument("--allow-system-nvrtc", action="store_true",
                        help="accept an NVRTC outside this Python environment")
    args = parser.parse_args(argv)

    import cupy
    from cupy.cuda import compiler, nvrtc

    from dragon_gpu.engines.gpu._kernels import COMPILE_OPTIONS, KERNEL_FILES, kernel_source
    from dragon_gpu.engines.gpu._plan import all_kernels
    from dragon_gpu.engines.gpu.decode import DECODE_KERNEL_FILES, DECODE_KERNELS

    # CuPy asks the current device for its architecture (and fails without one); everything
    # else is CuPy's path: its options, its NVRTC program, a cubin as RawModule would load.
    compiler._get_arch_for_options_for_nvrtc = lambda arch=None: (f"-arch=sm_{arch}", "cubin")
    major, minor = nvrtc.getVersion()
    print(f"cupy {cupy.__version__}, NVRTC {major}.{minor}, sm_{args.arch}")
    names: dict[str, list[str]] = {"probe.cu": ["probe"]}
    for spec in all_kernels():
        names.setdefault(spec.file, []).append(spec.name)
    for file, name in DECODE_KERNELS:
        names.setdefault(file, []).append(name)
    failed = False
    for file in KERNEL_FILES + DECODE_KERNEL_FILES:
        try:
            cubin, _ = compiler.compile_using_nvrtc(kernel_source(file),
                                                    options=COMPILE_OPTIONS + ("-ftz=true",),
                                                    arch=args.arch, filename=file)
        except Exception as exc:
            print(f"FAIL {file}: {type(exc).__name__}: {exc}")
            failed = True
            continue
        missing = [n for n in names.get(file, []) if n.encode() not in cubin]
        ok = cubin[:4] == b"\x7fELF" and not missing
        failed |= not ok
        print(f"{'ok  ' if ok else 'FAIL'} {file}: cubin of {len(cubin)} bytes, kernels "
              f"{', '.join(names.get(file, []))}" + (f"; missing {missing}" if missing else ""))
    libs = loaded_nvrtc()
    print("NVRTC library:", ", ".join(libs) or "none found in /proc/self/maps")
    outside = [lib for lib in libs if not lib.startswith(sys.prefix)]
    if outside and not args.allow_system_nvrtc:
        print(f"FAIL NVRTC was loaded from outside this environment ({sys.prefix})")
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
