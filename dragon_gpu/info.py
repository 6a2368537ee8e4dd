"""``dragon-gpu info``: what a file holds and what it costs to decode."""

from __future__ import annotations

import os
import time

from .io import open_mask, resolve_rule
from .io._decode import decode_workers

#: decode about this many bytes to measure the cost.
SAMPLE_NBYTES = 32 << 20
#: never sample a file whose smallest decodable unit is larger than this (the default --memory
#: budget's quarter, as for detect): info must stay cheap on a hostile header too.
MAX_SAMPLE_UNIT_NBYTES = 256 << 20


def describe_file(path, *, dataset=None, page=0, allow_external=False, sample=True) -> dict:
    """Facts about one input, as a flat dict of JSON-friendly values.

    With ``sample``, about 32 MiB of rows (whole strips/tiles/chunks, in bands spread from top to
    bottom, since an image's edges often compress unlike its middle) are decoded and timed after
    a warm-up read, and the time is scaled to the whole image: a measurement of this machine,
    not a guess from nominal codec speeds.
    """
    path = os.fspath(path)
    with open_mask(path, page=page, dataset=dataset, allow_external=allow_external) as reader:
        facts = {"path": path, "shape": list(reader.shape),
                 "dtype": "packed bits" if reader.packed else str(reader.dtype),
                 "bit_depth": reader.bits, "kind": reader.kind.value}
        facts.update(reader.describe())
        decoded = reader.height * reader.row_nbytes
        facts["decoded_bytes"] = decoded
        stored = facts.get("stored_bytes") or 0
        facts["compression_ratio"] = round(decoded / stored, 2) if stored else None
        facts["body_rule"] = resolve_rule(reader, "body").text
        facts["dye_rule"] = resolve_rule(reader, "dye").text
        facts["row_granularity"] = reader.row_granularity
        if sample and reader.unit_nbytes > MAX_SAMPLE_UNIT_NBYTES:
            facts["estimated_decode_seconds"] = None
            facts["decode_estimate_basis"] = (f"not sampled: one strip, tile row or chunk row "
                                              f"decodes to {reader.unit_nbytes} bytes")
        elif sample:
            rows, seconds, bands = _sample_decode(reader)
            facts["estimated_decode_seconds"] = round(seconds * reader.height / rows, 3)
            facts["decode_estimate_basis"] = (
                f"decoded {rows} rows in {bands} bands spread over the image in {seconds:.3f} s "
                f"on {decode_workers()} threads, scaled to {reader.height} rows")
    return facts


#: bands sampled for the decode estimate.
SAMPLE_BANDS = 4


def _sample_decode(reader) -> tuple[int, float, int]:
    """(rows decoded, seconds, bands) of a timed read of evenly spaced bands of whole units."""
    unit = reader.row_granularity
    total = max(unit, SAMPLE_NBYTES // max(1, reader.row_nbytes) // unit * unit)
    total = min(total, reader.height)
    band = max(unit, total // SAMPLE_BANDS // unit * unit)
    units = -(-reader.height // unit)
    starts = sorted({(units * (2 * i + 1) // (2 * SAMPLE_BANDS)) * unit
                     for i in range(SAMPLE_BANDS)})
    ranges = [(r, min(reader.height, r + band)) for r in starts if r < reader.height]
    out = reader.empty_rows(band)
    reader.read_rows(0, min(unit, reader.height))  # warm up the decode pool and buffers
    t0 = time.perf_counter()
    for r0, r1 in ranges:
        reader.read_rows(r0, r1, out=out)
    return sum(r1 - r0 for r0, r1 in ranges), time.perf_counter() - t0, len(ranges)
