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

    With ``sample``, the first rows (about 32 MiB decoded, whole strips/tiles/chunks) are decoded
    and timed, and the time is scaled to the whole image: a measurement of this machine, not a
    guess from nominal codec speeds.
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
            unit = reader.row_granularity
            rows = max(unit, SAMPLE_NBYTES // max(1, reader.row_nbytes) // unit * unit)
            rows = min(rows, reader.height)
            t0 = time.perf_counter()
            reader.read_rows(0, rows)
            dt = time.perf_counter() - t0
            facts["estimated_decode_seconds"] = round(dt * reader.height / rows, 3)
            facts["decode_estimate_basis"] = (f"decoded rows 0-{rows} in {dt:.3f} s on "
                                              f"{decode_workers()} threads, scaled to "
                                              f"{reader.height} rows")
    return facts
