"""Shared fixtures: test images in every encoding, and the skip rule of the ``gpu`` marker."""

from __future__ import annotations

import functools
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # so test modules can import imagefiles

from imagefiles import ALL_WRITERS, Written  # noqa: E402


@functools.lru_cache(maxsize=1)
def gpu_usable() -> bool:
    """True when the GPU engine exists and finds a usable GPU.

    The GPU engine is optional (CuPy may be missing): a failed import, or any error while probing,
    means no GPU, so the ``gpu`` tests are skipped rather than failed on a CPU-only machine.
    """
    try:
        from dragon_gpu.engines.gpu import has_gpu
    except ImportError:
        return False
    try:
        return bool(has_gpu())
    except Exception:
        return False


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
