"""The decision rule, in exact arithmetic."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

from . import numbers
from .errors import UsageError
from .model import Counts, Verdict

DEFAULT_CUTOFF = "0.10"
#: Decimal places a cutoff may have: far beyond what counts of 10**10 pixels can tell apart.


def parse_cutoff(text: str | float | Fraction) -> tuple[Fraction, str]:
    """Parse a cutoff written as a decimal (``"0.10"``, ``".1"``) or a percent (``"10%"``).

    Returns the exact fraction and a normalised text for reports. The grammar is
    :func:`dragon_gpu.numbers.parse_cutoff`'s (ASCII digits, at most one ``.``, then ``%`` or
    nothing). A binary float is converted through its shortest decimal representation, so
    ``0.1`` means exactly one tenth.

    Raises
    ------
    UsageError
        (``param="cutoff"``) if the text is not such a number, or the cutoff is not in [0, 1].
    """
    if isinstance(text, Fraction):
        value, shown = text, str(text)
    elif isinstance(text, float):
        if text != text or text in (float("inf"), float("-inf")):
            raise UsageError(f"expected a finite number, got {text!r}", param="cutoff")
        value, shown = Fraction(Decimal(repr(text))), repr(text)
    else:
        shown = str(text).strip()
        value = numbers.parse_cutoff(shown)
    if not 0 <= value <= 1:
        raise UsageError(f"must be between 0 and 1 (or 0% and 100%), got {shown!r}",
                         param="cutoff")
    return value, shown


def decide(counts: Counts, cutoff: Fraction | str = DEFAULT_CUTOFF) -> Verdict:
    """Decide whether a parasite has cancer.

    Parameters
    ----------
    counts : Counts
        Exact pixel counts of the whole pair.
    cutoff : Fraction or str
        Share of the body area that lit dye inside the body must exceed.

    Returns
    -------
    Verdict
        ``cancer = dye_in_body * q > p * body`` for ``cutoff = p / q``: strictly greater, so a
        pair at exactly the cutoff is not cancer. An empty body is never cancer and has
        ``fraction = None``.
    """
    value, shown = parse_cutoff(cutoff)
    p, q = value.numerator, value.denominator
    cancer = counts.body > 0 and counts.dye_in_body * q > p * counts.body
    fraction = counts.dye_in_body / counts.body if counts.body else None
    return Verdict(counts=counts, cutoff=value, cutoff_text=shown, cancer=cancer, fraction=fraction)
