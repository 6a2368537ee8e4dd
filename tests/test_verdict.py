"""The decision rule: exact rational cutoffs, strictly greater is cancer."""

from __future__ import annotations

from fractions import Fraction

import pytest

from dragon_gpu.errors import UsageError
from dragon_gpu.model import Counts
from dragon_gpu.verdict import decide, parse_cutoff


@pytest.mark.parametrize("text", ["0.10", "0.1", ".1", "10%", " 0.1 ", "0.100000", "10.0%", 0.1,
                                  Fraction(1, 10)])
def test_one_tenth_written_every_way_is_exactly_one_tenth(text):
    value, shown = parse_cutoff(text)
    assert value == Fraction(1, 10)
    assert isinstance(value, Fraction)


@pytest.mark.parametrize("text, value", [("0", 0), ("1", 1), ("100%", 1), ("0%", 0),
                                         ("0.333", Fraction(333, 1000)), ("12.5%", Fraction(1, 8)),
                                         ("25.%", Fraction(1, 4)),
                                         ("1.000000000000000000000000000000", 1)])
def test_other_cutoffs(text, value):
    assert parse_cutoff(text)[0] == value


def test_the_shown_text_is_what_the_user_wrote():
    assert parse_cutoff("10%")[1] == "10%"
    assert parse_cutoff("0.10")[1] == "0.10"


@pytest.mark.parametrize("text", ["", "abc", "0.1.1", "ten", "%", "nan", "inf", "-inf", "1/10",
                                  "-0.1", "1.01", "101%", "-1%", "0x10", "10 %", "1e-1", "1E-1",
                                  "2.5e-1", "1_0%", "\u0661\u0660%", "+0.1", "0. 1"])
def test_invalid_cutoffs_are_usage_errors(text):
    with pytest.raises(UsageError, match="^cutoff: ") as caught:
        parse_cutoff(text)
    assert caught.value.param == "cutoff"


@pytest.mark.parametrize("body, dye_in, cancer", [
    (100, 10, False),      # exactly 10%: not cancer
    (100, 11, True),
    (1000, 100, False),
    (1000, 101, True),
    (10, 1, False),
    (9, 1, True),          # 11.1%
    (1, 1, True),
    (1, 0, False),
    (10**10, 10**9, False),        # a 100k x 100k body at exactly 10%
    (10**10, 10**9 + 1, True),     # one pixel more
])
def test_strictly_greater_at_the_default_cutoff(body, dye_in, cancer):
    verdict = decide(Counts(body=body, dye_in_body=dye_in, dye=dye_in))
    assert verdict.cancer is cancer
    assert verdict.cutoff == Fraction(1, 10)
    assert verdict.fraction == dye_in / body


def test_exact_where_floats_would_be_wrong():
    """Counts past 2**53 round in floating point; the verdict must not."""
    body, dye_in = 2**54 + 1, 2**53 + 1   # as floats: 2**54 and 2**53, exactly one half
    assert float(dye_in) / float(body) == 0.5
    assert decide(Counts(body=body, dye_in_body=dye_in, dye=dye_in), "0.5").cancer is True
    assert decide(Counts(body=body + 1, dye_in_body=dye_in, dye=dye_in), "0.5").cancer is False


def test_cutoff_written_as_a_float_is_read_through_its_decimal():
    # 0.1 as a binary float is slightly above 1/10; read through "0.1" it is exactly 1/10.
    assert Fraction(0.1) != Fraction(1, 10)
    assert decide(Counts(body=10**17, dye_in_body=10**16, dye=0), 0.1).cancer is False


@pytest.mark.parametrize("cutoff, dye_in, cancer", [("0", 0, False), ("0", 1, True),
                                                    ("1", 100, False), ("100%", 100, False),
                                                    ("25%", 25, False), ("25%", 26, True)])
def test_cutoffs_at_the_ends_of_the_range(cutoff, dye_in, cancer):
    assert decide(Counts(body=100, dye_in_body=dye_in, dye=dye_in), cutoff).cancer is cancer


def test_an_empty_body_is_never_cancer_and_has_no_fraction():
    verdict = decide(Counts(body=0, dye_in_body=0, dye=5), "0")
    assert verdict.cancer is False
    assert verdict.fraction is None


def test_counts_add_exactly():
    a = Counts(body=2**40, dye_in_body=3, dye=2**33)
    b = Counts(body=5, dye_in_body=2**35, dye=2**35 + 1)
    total = a + b
    assert total == Counts(2**40 + 5, 2**35 + 3, 2**35 + 2**33 + 1)
    assert total.dye_outside_body == 2**33 - 2
    assert Counts.total([a, b, a]) == Counts(2**41 + 5, 2**35 + 6, 2**35 + 2**34 + 1)
    assert Counts.total([]) == Counts(0, 0, 0)
