"""The numbers users write: cutoffs, memory sizes and gray levels, read exactly.

One grammar each, the same for the command line and the library, and nothing else accepted:
ASCII digits only (no ``_`` separators, no other scripts' digits, no exponent, no space inside).

* decimal: ``0.10``, ``.1``, ``1.``, ``10``: digits with at most one ``.``;
* cutoff: a decimal, optionally followed by ``%``, in [0, 1] (or [0%, 100%]), with at most
  :data:`MAX_DECIMALS` decimal places;
* size: a decimal, optionally followed by a unit ``K``, ``M``, ``G``, ``T`` or ``P`` (powers of
  1024; ``KiB``, ``KB``, ``K`` and ``k`` all mean 1024 bytes), or ``B``; at most
  :data:`MAX_MEMORY` bytes;
* integer: digits, optionally after ``+`` or ``-``.

Surrounding whitespace is ignored. Errors are :class:`UsageError` with ``param`` set to the
parameter named by the caller (the CLI spells it as its flag).
"""

from __future__ import annotations

import re
from fractions import Fraction

from .errors import UsageError

#: Decimal places a cutoff may have: far beyond what counts of 10**10 pixels can tell apart.
MAX_DECIMALS = 60
#: Largest memory budget (1 PiB): larger is a typo, and sizes beyond it overflow planners' int64.
MAX_MEMORY = 1 << 50
#: Smallest memory budget: a block pair and the decode buffers need this much.
MIN_MEMORY = 16 << 20

_DECIMAL = re.compile(r"(?P<int>[0-9]*)(?:\.(?P<frac>[0-9]*))?", re.ASCII)
_CUTOFF = re.compile(r"(?P<num>[0-9]*(?:\.[0-9]*)?)(?P<pct>%?)", re.ASCII)
_SIZE = re.compile(r"(?P<num>[0-9]*(?:\.[0-9]*)?)(?P<unit>[kmgtp]?)(?P<suffix>i?b?)",
                   re.ASCII | re.IGNORECASE)
_INTEGER = re.compile(r"[+-]?[0-9]+", re.ASCII)
_UNITS = "_kmgtp"


def parse_decimal(text: str, *, param: str, max_decimals: int = MAX_DECIMALS) -> Fraction:
    """The exact value of ``digits[.digits]`` (at least one digit), as a fraction.

    Raises
    ------
    UsageError
        For anything else, or more than ``max_decimals`` decimal places.
    """
    raw = str(text).strip()
    match = _DECIMAL.fullmatch(raw)
    if not match or not (match["int"] or match["frac"]):
        raise UsageError(f"expected a decimal number such as 0.10, got {raw!r}", param=param)
    frac = match["frac"] or ""
    if len(frac) > max_decimals:
        raise UsageError(f"at most {max_decimals} decimal places, got {len(frac)} in {raw!r}",
                         param=param)
    return Fraction(int(match["int"] or "0") * 10 ** len(frac) + int(frac or "0"),
                    10 ** len(frac))


def parse_cutoff(text: str) -> Fraction:
    """The exact cutoff of ``0.10``, ``.1``, ``10%`` or ``12.5%``, in [0, 1].

    Raises
    ------
    UsageError
        (``param="cutoff"``) for another form, a value outside [0, 1], or more than
        :data:`MAX_DECIMALS` decimal places.
    """
    raw = str(text).strip()
    match = _CUTOFF.fullmatch(raw)
    if not match or not match["num"].strip("."):
        lower = raw.lower().lstrip("+-")
        if lower.rstrip("%").strip() in ("nan", "inf", "infinity"):
            raise UsageError(f"expected a finite number, got {raw!r}", param="cutoff")
        if raw.startswith("-") and _CUTOFF.fullmatch(raw[1:]):
            raise UsageError(f"must be between 0 and 1 (or 0% and 100%), got {raw!r}",
                             param="cutoff")
        raise UsageError(f"expected a decimal number such as 0.10 or 10% (ASCII digits, at most "
                         f"one '.', then '%' or nothing), got {raw!r}", param="cutoff")
    number = match["num"]
    whole = number.split(".")[0].lstrip("0")
    if len(whole) > 3:  # above 100 whatever the decimals: refuse before building the fraction
        raise UsageError(f"must be between 0 and 1 (or 0% and 100%), got {raw!r}", param="cutoff")
    value = parse_decimal(number, param="cutoff") / (100 if match["pct"] else 1)
    if not 0 <= value <= 1:
        raise UsageError(f"must be between 0 and 1 (or 0% and 100%), got {raw!r}", param="cutoff")
    return value


def parse_size(text: str, *, param: str = "memory", minimum: int = MIN_MEMORY,
               maximum: int = MAX_MEMORY) -> int:
    """Bytes of ``1GiB``, ``512M``, ``1.5G``, ``64MiB`` or a plain number of bytes, rounded down.

    Units are powers of 1024, case-insensitive; at most 20 decimal places.

    Raises
    ------
    UsageError
        For another form, or a size outside [minimum, maximum].
    """
    raw = str(text).strip()
    match = _SIZE.fullmatch(raw)
    if not match or not match["num"].strip("."):
        raise UsageError(f"expected a size such as 1GiB, 512M or 2000000000 (ASCII digits, at "
                         f"most one '.', then a unit K, M, G, T or P), got {raw!r}", param=param)
    unit = match["unit"].lower()
    if "i" in match["suffix"].lower() and not unit:
        raise UsageError(f"expected a unit such as KiB, MiB or GiB, got {raw!r}", param=param)
    number = match["num"]
    if len(number.split(".")[0].lstrip("0")) > 20:  # beyond any budget: no huge integers
        raise UsageError(f"at most {_human(maximum)}, got {raw!r}", param=param)
    exact = parse_decimal(number, param=param, max_decimals=20)
    value = int(exact * 1024 ** _UNITS.index(unit or "_"))
    if value > maximum:
        raise UsageError(f"at most {_human(maximum)}, got {raw!r}", param=param)
    if value < minimum:
        raise UsageError(f"at least {_human(minimum)} is needed, got {raw!r}", param=param)
    return value


def parse_integer(text: str, *, param: str) -> int:
    """``int`` of ASCII digits, optionally signed; a UsageError for anything else."""
    raw = str(text).strip()
    if not _INTEGER.fullmatch(raw):
        raise UsageError(f"expected an integer, got {raw!r}", param=param)
    return int(raw)


def is_integer(text: str) -> bool:
    """Whether ``text`` is an integer as :func:`parse_integer` reads one."""
    return _INTEGER.fullmatch(str(text).strip()) is not None


def _human(nbytes: int) -> str:
    for unit in ("PiB", "TiB", "GiB", "MiB", "KiB"):
        scale = 1024 ** ("KMGTP".index(unit[0]) + 1)
        if nbytes >= scale and nbytes % scale == 0:
            return f"{nbytes // scale} {unit}"
    return f"{nbytes} bytes"
