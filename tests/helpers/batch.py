"""Pairs with known counts for the batch and Dask tests, and tasks that worker processes import.

Expected counts come from plain NumPy on the arrays written, never from dragon-gpu.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import h5py
import numpy as np
import tifffile

#: Columns that depend on the run (timing, engine), not on the pair.
RUN_KEYS = ("seconds", "pixels_per_second", "backend")


def write_pair(folder: Path, name: str, shape: tuple[int, int], seed: int, fmt: str = "u8") -> dict:
    """Write ``folder/name_body.*`` and ``folder/name_dye.*``; return the expected counts.

    ``fmt``: ``u8`` (uint8 TIFF, strips), ``u8tiled`` (uint8 TIFF, 16x16 tiles), ``bits`` (1-bit
    TIFF: body MINISWHITE, dye MINISBLACK), ``h5`` (uint8 HDF5, chunked gzip), ``h5mask`` (bool
    HDF5 dataset named ``mask``).
    """
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    if fmt in ("u8", "u8tiled", "h5"):
        body = rng.integers(0, 256, shape, dtype=np.uint8)
        dye = rng.integers(0, 256, shape, dtype=np.uint8)
        body_mask, dye_mask = body < 128, dye >= 128  # the SPEC's default rules for uint8
    else:
        body = rng.random(shape) < 0.6
        dye = rng.random(shape) < 0.2
        body_mask, dye_mask = body, dye  # set bit: black (body, MINISWHITE) / white (dye)
    if fmt in ("u8", "u8tiled", "bits"):
        paths = folder / f"{name}_body.tif", folder / f"{name}_dye.tif"
        if fmt == "u8":
            tifffile.imwrite(paths[0], body, rowsperstrip=5)
            tifffile.imwrite(paths[1], dye, rowsperstrip=7, compression="zlib")
        elif fmt == "u8tiled":
            tifffile.imwrite(paths[0], body, tile=(16, 16))
            tifffile.imwrite(paths[1], dye, tile=(16, 16), compression="zlib")
        else:
            tifffile.imwrite(paths[0], body, photometric="miniswhite", compression="zlib",
                             rowsperstrip=64)
            tifffile.imwrite(paths[1], dye, photometric="minisblack", compression="zlib",
                             rowsperstrip=64)
    else:
        paths = folder / f"{name}_body.h5", folder / f"{name}_dye.h5"
        for path, data in zip(paths, (body, dye)):
            with h5py.File(path, "w") as fh:
                fh.create_dataset("mask" if fmt == "h5mask" else "image", data=data,
                                  chunks=(min(9, shape[0]), shape[1]), compression="gzip")
    return {"body": paths[0], "dye": paths[1], "shape": list(shape),
            "body_pixels": int(np.count_nonzero(body_mask)),
            "dye_in_body_pixels": int(np.count_nonzero(body_mask & dye_mask)),
            "dye_pixels": int(np.count_nonzero(dye_mask)),
            "dye_outside_body_pixels": int(np.count_nonzero(dye_mask & ~body_mask))}


def expected_cancer(truth: dict, cutoff=(1, 10)) -> bool:
    """``dye_in_body > p / q * body``, on integers."""
    p, q = cutoff
    return truth["dye_in_body_pixels"] * q > p * truth["body_pixels"]


def check_ok(record: dict, truth: dict, cutoff=(1, 10)) -> None:
    """Assert a results record has the NumPy counts of its pair (and the verdict at ``cutoff``)."""
    assert record["status"] == "ok", record
    assert record["error"] is None
    assert record["shape"] == truth["shape"]
    for key in ("body_pixels", "dye_in_body_pixels", "dye_pixels", "dye_outside_body_pixels"):
        assert record[key] == truth[key], (key, record[key], truth[key])
    assert record["cancer"] is expected_cancer(truth, cutoff)
    assert record["fraction"] == truth["dye_in_body_pixels"] / truth["body_pixels"]
    assert os.path.samefile(record["body_path"], truth["body"])
    assert os.path.samefile(record["dye_path"], truth["dye"])


def without_run_keys(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in RUN_KEYS}


def crash_task(body, dye, options):
    """A task that kills its own process, as a segfault in a C library would, on a marked pair."""
    if "crash" in os.path.basename(os.fspath(body)):
        os.kill(os.getpid(), signal.SIGSEGV)
    from dragon_gpu.pipeline import detect

    return detect(body, dye, options)


def buggy_task(body, dye, options):
    """A task with a bug (an unexpected exception) on a marked pair."""
    if "bug" in os.path.basename(os.fspath(body)):
        raise ZeroDivisionError("a bug")
    from dragon_gpu.pipeline import detect

    return detect(body, dye, options)


def write_pattern_pair(folder: Path, name: str, k: int, side: int = 2000) -> dict:
    """A compressible pair (tiny on disk, a few milliseconds to count): a dark disk as the body
    and bright stripes as the dye; ``k`` changes both."""
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[:side, :side]
    c = side // 2
    body = np.where((yy - c) ** 2 + (xx - c) ** 2 < (side * (3 + k % 3) // 10) ** 2, 20, 230)
    dye = np.where(((xx + 37 * k) // 50) % (3 + 9 * (k % 2)) == 0, 250, 5)
    body, dye = body.astype(np.uint8), dye.astype(np.uint8)
    paths = folder / f"{name}_body.tif", folder / f"{name}_dye.tif"
    tifffile.imwrite(paths[0], body, compression="zlib", rowsperstrip=64)
    tifffile.imwrite(paths[1], dye, compression="zlib", rowsperstrip=64)
    body_mask, dye_mask = body < 128, dye >= 128
    return {"body": paths[0], "dye": paths[1], "shape": [side, side],
            "body_pixels": int(np.count_nonzero(body_mask)),
            "dye_in_body_pixels": int(np.count_nonzero(body_mask & dye_mask)),
            "dye_pixels": int(np.count_nonzero(dye_mask)),
            "dye_outside_body_pixels": int(np.count_nonzero(dye_mask & ~body_mask))}
