"""Code the tests share; nothing here is collected as a test.

Import a part by its name (``from tests.helpers.files import write_tiff``); the project root is
on ``sys.path`` through pytest's ``pythonpath`` setting, so worker processes (multiprocessing,
Dask) import these modules by the same names. A script run in a subprocess gets the root through
:func:`python_env`.

- :mod:`~tests.helpers.files`: TIFF and HDF5 test images in every encoding, and the NumPy oracle
  of what a reader must deliver and which pixels are body or dye.
- :mod:`~tests.helpers.zarr_files`: Zarr and OME-Zarr test images (imports zarr, which is
  optional: import it after ``pytest.importorskip("zarr")``).
- :mod:`~tests.helpers.engine_cases`: random blocks of every encoding with their counts by plain
  NumPy, :class:`~tests.helpers.engine_cases.ArrayReader` (a reader over rows in memory), and
  whether a GPU is usable here.
- :mod:`~tests.helpers.batch`: pairs with known counts for the batch and Dask tests, and tasks
  that worker processes import.
- :mod:`~tests.helpers.gpu_decode_cases`: files of every layout the GPU decode path plans, and a
  CPU decoder of its batch layout.
- :mod:`~tests.helpers.cuda_emulation`: builds a ``.cu`` source as C++ against
  ``cuda_host_shim.h`` and launches its kernels on the CPU.
- :mod:`~tests.helpers.fake_cupy`: a stand-in for the parts of CuPy the CUDA engine uses, running
  the real kernels through :mod:`~tests.helpers.cuda_emulation`.
- :mod:`~tests.helpers.fake_gpu_task`: a batch task that counts on that stand-in inside each
  worker process.
- :mod:`~tests.helpers.craft`: hand-made hostile TIFF headers and the small valid files the
  fuzzers mutate.
- :mod:`~tests.helpers.fuzz`: the reader fuzzer (also run at length by
  ``benchmarks/fuzz_readers.py``).
"""

from __future__ import annotations

import os
from pathlib import Path

#: The project root: the folder that holds ``tests/`` (and, in a checkout, ``dragon_gpu/``).
ROOT = Path(__file__).resolve().parents[2]


def python_env() -> dict[str, str]:
    """The environment for a Python subprocess that imports :mod:`tests.helpers`: this one, with
    the project root first on ``PYTHONPATH``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env
