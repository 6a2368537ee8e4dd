"""Mutated TIFF and HDF5 files give a clean DragonError or a correct count, never anything else.

Short here (a fixed, derandomized set of examples, well under 30 s); the long run is
``python benchmarks/fuzz_readers.py N``. Files that once broke the readers live in
``tests/data/corpus`` and are replayed by ``test_corpus.py``.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import craft, fuzz

EXAMPLES = {"tiff": 120, "hdf5": 80}


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    """{kind: [(path, bytes, pixels)]} of small valid files to mutate."""
    folder = tmp_path_factory.mktemp("fuzz-bases")
    out = {}
    for kind, made in (("tiff", craft.valid_tiffs(folder)), ("hdf5", craft.valid_hdf5(folder))):
        out[kind] = [(path, open(path, "rb").read(), pixels) for path, pixels in made.items()]
    return out


@st.composite
def ops(draw):
    """A few mutations, most of them in the first bytes where the structure lives."""
    result = []
    for _ in range(draw(st.integers(1, 5))):
        head = draw(st.booleans()) or draw(st.booleans())
        at = draw(st.integers(0, fuzz.HEAD - 1) if head else st.integers(0, 1 << 20))
        kind = draw(st.sampled_from(["byte", "word", "word", "flip", "cut"]))
        width = draw(st.sampled_from([1, 2, 4, 8]))
        value = draw(st.sampled_from(fuzz.INTERESTING) | st.integers(0, 2**64 - 1))
        result.append(fuzz.Op(kind, at, value, width, draw(st.booleans())))
    return result


def _check(tmp_path_factory, base, mutations, suffix):
    path, data, pixels = base
    mutated = tmp_path_factory.getbasetemp() / f"mutated{suffix}"
    mutated.write_bytes(fuzz.mutate(data, mutations))
    fuzz.judge(str(mutated), path, pixels, seconds=20)


@pytest.mark.timeout(300)
@settings(max_examples=EXAMPLES["tiff"], deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data(), mutations=ops())
def test_mutated_tiff(bases, tmp_path_factory, data, mutations):
    base = data.draw(st.sampled_from(bases["tiff"]), label="base")
    _check(tmp_path_factory, base, mutations, ".tif")


@pytest.mark.timeout(300)
@settings(max_examples=EXAMPLES["hdf5"], deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data(), mutations=ops())
def test_mutated_hdf5(bases, tmp_path_factory, data, mutations):
    base = data.draw(st.sampled_from(bases["hdf5"]), label="base")
    _check(tmp_path_factory, base, mutations, ".h5")


def test_unmutated_bases_are_counted_correctly(bases, tmp_path_factory):
    # The oracle itself: every base, unmutated, must be counted and match its recount, or the
    # fuzz tests above could pass by refusing everything.
    for kind in ("tiff", "hdf5"):
        for path, _data, pixels in bases[kind]:
            assert fuzz.judge(path, path, pixels) == "matched", path
