"""Library errors are about values and name the parameter (``param``); the CLI spells it as the
command's flag. Every DragonError pickles with its class, message and attributes (a Dask worker
raises them as they are)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

import dragon_gpu.errors as errors
from dragon_gpu.cli import app
from dragon_gpu.errors import DragonError, EmptyBodyError, GpuUnavailableError, UsageError
from dragon_gpu.io.writers import HDF5_COMPRESSIONS, TIFF_COMPRESSIONS
from dragon_gpu.pipeline import detect

ALL = [c for c in vars(errors).values()
       if isinstance(c, type) and issubclass(c, DragonError)]


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_every_error_pickles_whole(cls):
    exc = cls("is {option:allow_external} wrong", "a.tif", param="page")
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is cls
    assert str(back) == str(exc) == "a.tif: page: is allow_external wrong"
    assert (back.problem, back.path, back.param) == (exc.problem, "a.tif", "page")
    assert back.format(lambda n: "--" + n) == "a.tif: --page: is --allow_external wrong"


def test_extra_attributes_survive_pickling():
    back = pickle.loads(pickle.dumps(EmptyBodyError("empty", "b.tif", counts=(1, 2))))
    assert back.counts == (1, 2) and str(back) == "b.tif: empty"
    back = pickle.loads(pickle.dumps(GpuUnavailableError("no GPU", absent=True)))
    assert back.absent is True and str(back) == "no GPU"
    assert isinstance(back, RuntimeError)


def test_builtins_are_kept():
    back = pickle.loads(pickle.dumps(errors.MemoryBudgetError("too big", param="memory")))
    assert isinstance(back, MemoryError) and str(back) == "memory: too big"


@pytest.fixture()
def gray(tmp_path):
    path = tmp_path / "g.tif"
    tifffile.imwrite(path, np.arange(64, dtype=np.uint8).reshape(8, 8), photometric="minisblack")
    return path


@pytest.mark.parametrize("kwargs, param", [
    ({"cutoff": "2"}, "cutoff"),
    ({"threshold": 300}, "threshold"),
    ({"body_threshold": "otsuu"}, "body_threshold"),
    ({"memory": "1 GiB"}, "memory"),
    ({"memory": 16 << 20, "block_rows": 10 ** 9}, "block_rows"),
])
def test_library_errors_name_parameters_not_flags(gray, kwargs, param):
    with pytest.raises(DragonError) as caught:
        detect(gray, gray, device="cpu", **kwargs)
    assert caught.value.param == param
    assert "--" not in str(caught.value)


@pytest.mark.parametrize("args, flag", [
    (["--cutoff", "2"], "--cutoff: "),
    (["--threshold", "300"], "--threshold: "),
    (["--dye-threshold", "otsuu"], "--dye-threshold: "),
    (["--memory", "16MiB", "--block-rows", "1000000000"], "--block-rows: "),
])
def test_the_cli_names_its_flags(gray, args, flag):
    result = CliRunner().invoke(app, ["detect", str(gray), str(gray), "-q", "--device", "cpu",
                                      *args])
    assert result.exit_code == 2, result.output
    assert flag in result.stderr and result.stderr.count("\n") == 1


def test_writers_name_parameters(tmp_path):
    from dragon_gpu.io.writers import Hdf5RowWriter, TiffRowWriter

    for cls, name in ((TiffRowWriter, "t.tif"), (Hdf5RowWriter, "h.h5")):
        with pytest.raises(UsageError) as caught:
            cls(tmp_path / name, (8, 8), compression="bogus")
        assert caught.value.param == "compression" and "--" not in str(caught.value)
    assert "none" in TIFF_COMPRESSIONS and "none" in HDF5_COMPRESSIONS


def test_flag_spelling():
    from dragon_gpu.cli.common import flag_of

    assert flag_of("block_rows") == "--block-rows" and flag_of("fmt") == "--format"
    assert flag_of("dataset", "info") == flag_of("dataset", "convert") == "--dataset"
    assert flag_of("dataset", "detect") == "--body-dataset / --dye-dataset"


def test_convert_names_the_flag(gray, tmp_path):
    result = CliRunner().invoke(app, ["convert", str(gray), str(tmp_path / "o.tif"), "-q",
                                      "--compression", "bogus"])
    assert result.exit_code == 2, result.output
    assert "--compression: 'bogus' is not a TIFF compression" in result.stderr
