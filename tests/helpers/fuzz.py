"""The reader fuzzer: mutate valid TIFF and HDF5 files, detect them, judge the outcome.

Shared by the short property test (``tests/test_fuzz_readers.py``, hypothesis) and the long run
(``benchmarks/fuzz_readers.py``). An outcome is acceptable when detection either refuses the file
with a :class:`DragonError` or returns counts that match an independent recount: the pixels as
tifffile or h5py read them (when they read the mutated file without complaint), passed through
the SPEC's pixel rules in plain NumPy. Anything else (another exception, a wrong count, a hang)
is a finding.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import struct
import warnings
from dataclasses import dataclass

import numpy as np

from dragon_gpu.errors import DragonError
from dragon_gpu.pipeline import detect

#: The budget detection runs under: small, so a unit that escapes the checks shows.
MEMORY = 64 << 20
#: Positions in the first bytes (headers, IFDs, object headers) are mutated more often.
HEAD = 4096

INTERESTING = (0, 1, 2, 7, 8, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x10000,
               0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 2**63 - 1, 2**64 - 1)


@dataclass(frozen=True)
class Op:
    """One mutation: ``byte`` (set one byte), ``word`` (write an int of ``width`` bytes),
    ``flip`` (xor one bit), or ``cut`` (truncate at ``at``)."""

    kind: str
    at: int
    value: int = 0
    width: int = 1
    big: bool = False


def mutate(data: bytes, ops: list[Op]) -> bytes:
    """Apply ``ops`` in order; positions wrap around the current length."""
    out = bytearray(data)
    for op in ops:
        if not out:
            break
        at = op.at % len(out)
        if op.kind == "cut":
            del out[max(1, at):]
        elif op.kind == "flip":
            out[at] ^= 1 << (op.value % 8)
        elif op.kind == "byte":
            out[at] = op.value & 0xFF
        else:
            fmt = {1: "B", 2: "H", 4: "I", 8: "Q"}[op.width]
            value = op.value % (1 << (8 * op.width))
            raw = struct.pack((">" if op.big else "<") + fmt, value)
            out[at:at + op.width] = raw[:max(0, len(out) - at)]
    return bytes(out)


def random_ops(rng, size: int) -> list[Op]:
    """A few random mutations of a file of ``size`` bytes (for the long run)."""
    ops = []
    for _ in range(rng.randint(1, 6)):
        at = rng.randrange(min(size, HEAD)) if rng.random() < 0.7 else rng.randrange(size)
        kind = rng.choice(["byte", "word", "word", "flip", "cut"] if rng.random() < 0.15
                          else ["byte", "word", "word", "flip"])
        width = rng.choice([1, 2, 4, 8])
        value = rng.choice(INTERESTING + (size, size - 1, size + 1, rng.randrange(1 << 32)))
        ops.append(Op(kind, at, value, width, rng.random() < 0.2))
    return ops


# -- judging one file ---------------------------------------------------------------------------
class Timeout(AssertionError):
    """Detection did not finish in time: a hang is a finding."""


@contextlib.contextmanager
def deadline(seconds: float):
    """Raise :class:`Timeout` in the main thread after ``seconds`` (Unix, main thread only)."""
    def fire(_signum, _frame):
        raise Timeout(f"no answer within {seconds} s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def judge(mutated: str, partner: str, partner_pixels: np.ndarray, seconds: float = 20.0) -> str:
    """Detect ``mutated`` (body) against a valid ``partner`` (dye).

    Returns ``"refused"`` (a DragonError), ``"counted"`` (counts returned, nothing to compare
    with) or ``"matched"`` (counts equal to the independent recount). Raises AssertionError on a
    wrong count or a hang; any other exception propagates.
    """
    with deadline(seconds):
        try:
            result = detect(mutated, partner, device="cpu", memory=MEMORY)
        except DragonError:
            return "refused"
    body = independent_body(mutated)
    if body is None or body.shape != partner_pixels.shape:
        return "counted"
    if partner_pixels.dtype == bool:
        dye = partner_pixels  # a set bit (MINISBLACK: white) is lit dye
    else:
        dye = partner_pixels >= (1 << (8 * partner_pixels.dtype.itemsize - 1))
    got = result.to_dict()
    want = {"body_pixels": int(body.sum()), "dye_in_body_pixels": int((body & dye).sum()),
            "dye_pixels": int(dye.sum())}
    assert {k: got[k] for k in want} == want, f"{mutated}: counted {got}, recount {want}"
    return "matched"


def independent_body(path: str) -> np.ndarray | None:
    """Body mask of ``path`` per the SPEC, from tifffile or h5py; None if they complain."""
    masks = independent_masks(path)
    return None if masks is None else masks[0]


def independent_masks(path: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(body, dye) masks of ``path`` read as either role, per the SPEC, in plain NumPy.

    Gray and 1-bit images: body = dark (brightness below half the range, or black), dye = the
    rest. Boolean masks: a set value is both a body and a dye pixel. None when tifffile or h5py
    cannot read the file without complaint, or it is not something the SPEC reads.
    """
    with open(path, "rb") as fh:
        magic = fh.read(4)
    try:
        if magic[:2] in (b"II", b"MM"):
            body = _tiff_body(path)
            return None if body is None else (body, ~body)
        found = _hdf5_pixels(path)
    except Exception:  # the reference library refuses the file: nothing to compare with
        return None
    if found is None:
        return None
    if found.dtype == bool:
        return found, found
    body = found < (1 << (8 * found.dtype.itemsize - 1))
    return body, ~body


class _Complaints(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.seen = 0

    def emit(self, record):
        self.seen += 1


def _tiff_body(path: str) -> np.ndarray | None:
    import tifffile

    log = logging.getLogger("tifffile")
    complaints = _Complaints()
    log.addHandler(complaints)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with tifffile.TiffFile(path) as tif:
                page = tif.pages[0]
                pixels = page.asarray()
                photometric, bits = int(page.photometric), int(page.bitspersample)
    finally:
        log.removeHandler(complaints)
    if complaints.seen or pixels.ndim != 2 or photometric not in (0, 1):
        return None
    if pixels.dtype == bool:
        white = pixels if photometric == 1 else ~pixels
        return ~white  # the body is black
    if pixels.dtype not in (np.uint8, np.uint16) or bits not in (8, 16):
        return None
    top = (1 << bits) - 1
    brightness = pixels.astype(np.int64) if photometric == 1 else top - pixels.astype(np.int64)
    return brightness < (1 << (bits - 1))


def _index_consistent(ds) -> bool:
    """Whether HDF5 finds, by lookup, every chunk its index iteration lists.

    A damaged B-tree key (an offset in the element dimension, which the iteration does not
    report) makes HDF5's own reads treat a stored chunk as missing and return the fill value,
    while the iteration and ``get_chunk_info_by_coord`` still report the chunk: h5py then
    disagrees with itself, and its ``ds[()]`` is no reference.
    """
    offsets = []
    ds.id.chunk_iter(lambda info: offsets.append(info.chunk_offset))
    try:
        for offset in offsets:
            ds.id.read_direct_chunk(offset)
    except Exception:
        return False
    return True


def _hdf5_pixels(path: str) -> np.ndarray | None:
    import h5py

    with h5py.File(path, "r") as f:
        names = list(f)
        if len(names) != 1:
            return None
        ds = f[names[0]]
        if not isinstance(ds, h5py.Dataset) or ds.ndim != 2 or ds.is_virtual or ds.external:
            return None
        if ds.chunks and not _index_consistent(ds):
            return None
        pixels = ds[()]
    if pixels.dtype != bool and (pixels.dtype.kind != "u" or pixels.dtype.itemsize not in (1, 2)):
        return None
    return pixels
