"""The grammar of the numbers users write (dragon_gpu.numbers): exactly ASCII digits, at most one
'.', then '%' (cutoffs) or a unit (sizes); values checked against plain integer arithmetic."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, strategies as st
from typer.testing import CliRunner

from dragon_gpu.cli import app
from dragon_gpu.errors import UsageError
from dragon_gpu.numbers import MAX_MEMORY, parse_cutoff, parse_integer, parse_size

DIGITS = st.text("0123456789", min_size=1, max_size=8)


@given(DIGITS, st.text("0123456789", max_size=60))
def test_a_decimal_cutoff_is_read_exactly(whole, frac):
    text = f"{whole}.{frac}"
    expected = Fraction(int(whole) * 10 ** len(frac) + int(frac or "0"), 10 ** len(frac))
    if expected <= 1:
        assert parse_cutoff(text) == expected
        assert parse_cutoff(f"{text}%") == expected / 100
    else:
        with pytest.raises(UsageError, match="between 0 and 1"):
            parse_cutoff(text)


def test_sixty_decimal_places_are_accepted_sixty_one_are_not():
    assert parse_cutoff("1.000000000000000000000000000000") == 1
    assert parse_cutoff("0." + "0" * 59 + "1") == Fraction(1, 10 ** 60)
    with pytest.raises(UsageError, match="60 decimal places"):
        parse_cutoff("0." + "0" * 60 + "1")


@pytest.mark.parametrize("text", ["1_0%", "0.1_0", "\u0661\u0660%", "\uff11%", "10 %", "0. 1",
                                  "1e-1", "+0.1", "0x1", "1..", "..1", "1.2.3", "%10", "10%%",
                                  "", ".", "%", "1/10", "0,1"])
def test_anything_else_is_refused_as_a_cutoff(text):
    with pytest.raises(UsageError) as caught:
        parse_cutoff(text)
    assert caught.value.param == "cutoff"


@given(st.integers(16, 1 << 20), st.sampled_from(["", "K", "M", "G", "T", "P"]),
       st.sampled_from(["", "i", "iB", "B", "b", "ib"]))
def test_sizes_are_powers_of_1024(number, unit, suffix):
    if not unit and "i" in suffix.lower():
        return
    text = f"{number}{unit}{suffix}"
    expected = number * 1024 ** " KMGTP".index(unit or " ")
    if expected > MAX_MEMORY:
        with pytest.raises(UsageError, match="at most 1 PiB"):
            parse_size(text)
    elif expected < 16 << 20:
        with pytest.raises(UsageError, match="at least 16 MiB"):
            parse_size(text)
    else:
        assert parse_size(text) == expected
        assert parse_size(text.lower()) == expected


def test_fractional_sizes_round_down():
    assert parse_size("1.5G") == 3 << 29
    assert parse_size("0.1GiB") == (1 << 30) // 10


def test_the_upper_bound_is_the_same_whatever_the_unit():
    assert parse_size("1PiB") == parse_size("1024TiB") == MAX_MEMORY
    for text in ("1025TiB", "99999999999999999999999TiB", "2P", str(MAX_MEMORY + 1),
                 "9" * 400):
        with pytest.raises(UsageError, match="at most 1 PiB"):
            parse_size(text)


@pytest.mark.parametrize("text", ["1 GiB", "1_024MiB", "\u0661GiB", "1EiB", "1GiB ", "lots",
                                  "1iB", "-1GiB", "1e9", "GiB"])
def test_anything_else_is_refused_as_a_size(text):
    if text == "1GiB ":  # surrounding space is not inside the number
        assert parse_size(text) == 1 << 30
        return
    with pytest.raises(UsageError) as caught:
        parse_size(text)
    assert caught.value.param == "memory"


def test_integers_are_ascii():
    assert parse_integer(" -12 ", param="threshold") == -12
    for text in ("1_0", "\u0661\u0662", "1.0", "", "+"):
        with pytest.raises(UsageError):
            parse_integer(text, param="threshold")


@pytest.mark.parametrize("args, words", [
    (["--cutoff", "1_0%"], ("--cutoff:", "'1_0%'")),
    (["--cutoff", "10 %"], ("--cutoff:",)),
    (["--memory", "99999999999999999999999TiB"], ("--memory:", "at most 1 PiB")),
    (["--memory", "1 GiB"], ("--memory:",)),
    (["--threshold", "\u0661\u0662\u0668"], ("--threshold:",)),
])
def test_the_cli_refuses_them_naming_the_flag(tmp_path, args, words):
    import numpy as np
    import tifffile

    path = tmp_path / "g.tif"
    tifffile.imwrite(path, np.zeros((8, 8), np.uint8), photometric="minisblack")
    result = CliRunner().invoke(app, ["detect", str(path), str(path), "-q", *args])
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1
    for word in words:
        assert word in result.stderr


def test_the_cli_accepts_the_limits(tmp_path):
    import numpy as np
    import tifffile

    path = tmp_path / "g.tif"
    tifffile.imwrite(path, np.zeros((8, 8), np.uint8), photometric="minisblack")
    result = CliRunner().invoke(app, ["detect", str(path), str(path), "-q", "--device", "cpu",
                                      "--cutoff", "1.000000000000000000000000000000",
                                      "--memory", "1PiB", "--json"])
    assert result.exit_code == 0, result.output
    assert '"cutoff": "1.000000000000000000000000000000"' in result.stdout
