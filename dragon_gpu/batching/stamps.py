"""What a results row was computed with, so that a resumed batch never reuses a stale row."""

from __future__ import annotations

import hashlib
import json
import os

from ..pipeline import DetectOptions
from .manifest import Pair

#: The detection options that can change a row; the others (device, memory, decode...) change
#: how fast it comes, not what it says.
RESULT_OPTIONS = ("cutoff", "threshold", "body_threshold", "dye_threshold", "body_polarity",
                  "dye_polarity", "body_dataset", "dye_dataset", "page", "allow_external",
                  "strict")


def options_digest(options: DetectOptions) -> str:
    """A short digest of the options of :data:`RESULT_OPTIONS` (normalised options)."""
    values = {}
    for name in RESULT_OPTIONS:
        value = getattr(options, name)
        values[name] = getattr(value, "value", value)  # an Enum by its value
    text = json.dumps(values, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _file_stamp(path: str) -> list[int] | None:
    """``[size, mtime_ns]`` of a local file: a cheap fingerprint (None for a URL, or a path
    that cannot be looked at from here, as on a Dask client that does not see the files)."""
    from ..io import is_url

    if is_url(path):
        return None
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return [st.st_size, st.st_mtime_ns]


def stamp(pair: Pair, digest: str) -> str:
    """The ``computed_with`` cell of a row: the options' digest and both inputs' size and
    modification time, as compact JSON. A row is reused only while its stamp is unchanged."""
    return json.dumps({"options": digest, "body": _file_stamp(pair.body),
                       "dye": _file_stamp(pair.dye)}, separators=(",", ":"))


def stale_reason(old: str | None, new: str) -> str:
    """Why a row stamped ``old`` is not reused under ``new``: ``options``, ``inputs`` or
    ``unrecorded`` (a row of an older version, without a stamp)."""
    try:
        before, now = json.loads(old), json.loads(new)
        if before["options"] != now["options"]:
            return "options"
    except (TypeError, ValueError, KeyError):
        return "unrecorded"
    return "inputs"
