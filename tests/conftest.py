"""Shared fixtures: test images in every encoding, and the skip rule of the ``gpu`` marker."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from tests.helpers.engine_cases import gpu_usable
from tests.helpers.files import ALL_WRITERS, Written


def pytest_collection_modifyitems(config, items):
    if gpu_usable():
        return
    skip = pytest.mark.skip(reason="needs a usable CUDA GPU and CuPy")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def pytest_generate_tests(metafunc):
    """Parametrize conformance suites: a class lists its ``cases`` and its tests take ``case``."""
    cases = getattr(metafunc.cls, "cases", None)
    if cases is not None and "case" in metafunc.fixturenames:
        metafunc.parametrize("case", list(cases), ids=[str(c) for c in cases])


@pytest.fixture
def rng(request) -> np.random.Generator:
    """A generator seeded by the test's name: reproducible, but different for every test."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


@pytest.fixture
def write_image(tmp_path):
    """``write_image(name, rng, shape) -> Written`` for any writer of :data:`ALL_WRITERS`."""
    counter = iter(range(10**6))

    def write(name: str, rng: np.random.Generator, shape: tuple[int, int]) -> Written:
        return ALL_WRITERS[name](tmp_path / f"{name}-{next(counter)}", rng, shape)

    return write
