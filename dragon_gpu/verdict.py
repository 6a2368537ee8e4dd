"""The decision rule, in exact arithmetic."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from fractions import Fraction

from .errors import UsageError
from .model import Counts, Verdict

DEFAULT_CUTOFF = "0.10"
#: Decimal places a cutoff may have: far beyond what counts of 10**10 pixels can tell apart.
MAX_CUTOFF_DIGITS = 60


def parse_cutoff(text: str | float | Fraction) -> tuple[Fraction, str]:
    """Parse a cutoff written as a decimal (``"0.10"``, ``".1"``, ``"1e-1"``) or a percent (``"10%"``).

    Returns the exact fraction and a normalised text for reports. A binary float is converted
    through its shortest decimal representation, so ``0.1`` means exactly one tenth.

    Raises
    ------
    UsageError
        If the text is not a number, or the cutoff is not in [0, 1].
    """
    if isinstance(text, Fraction):
        value = text
        shown = str(text)
    else:
        raw = str(text).strip()
        percent = raw.endswith("%")
        number = raw[:-1].strip() if percent else raw
        try:
            dec = Decimal(number)
        except InvalidOperation:
            raise UsageError(f"--cutoff: expected a decimal number such as 0.10 or 10%, got {raw!r}")
        if not dec.is_finite():
            raise UsageError(f"--cutoff: expected a finite number, got {raw!r}")
        # Fraction(Decimal("1e-999999999")) builds a billion-digit integer: bound the digits first.
        sign, digits, exponent = dec.as_tuple()
        if dec and (len(digits) + max(0, -exponent) > MAX_CUTOFF_DIGITS
                    or dec.adjusted() > 3):
            raise UsageError(f"--cutoff: must be between 0 and 1 (or 0% and 100%) with at most "
                             f"{MAX_CUTOFF_DIGITS} decimal places, got {raw!r}")
        value = Fraction(dec) / (100 if percent else 1)
        shown = raw
    if not 0 <= value <= 1:
        raise UsageError(f"--cutoff: must be between 0 and 1 (or 0% and 100%), got {shown!r}")
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
