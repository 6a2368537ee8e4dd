"""The command line's own structure: choices are the library's, options are declared once, and
``--help`` loads nothing heavy."""

from __future__ import annotations

import subprocess
import sys

import typer.main

from dragon_gpu import choices
from dragon_gpu.cli import app
from dragon_gpu.cli.options import DEFAULT_CUTOFF, DEFAULT_MEMORY, parse_memory


def _params(command: str) -> dict:
    click_app = typer.main.get_command(app)
    return {p.name: p for p in click_app.commands[command].params}


def test_choices_are_the_library_constants():
    from dragon_gpu import convert, pipeline, simulate, thresholds, verdict
    from dragon_gpu.engines.gpu import decode

    assert tuple(thresholds.METHODS) == choices.THRESHOLD_METHODS
    assert (decode.DECODE_MODES, decode.GPU_DECODERS) == (choices.DECODE_MODES,
                                                           choices.GPU_DECODERS)
    assert convert.FORMATS == choices.OUTPUT_FORMATS
    assert convert.ENCODINGS == choices.CONVERT_ENCODINGS
    assert simulate.KINDS == choices.GENERATE_KINDS
    assert simulate.ENCODINGS == choices.GENERATE_ENCODINGS
    assert DEFAULT_CUTOFF == verdict.DEFAULT_CUTOFF
    assert parse_memory(DEFAULT_MEMORY) == pipeline.DEFAULT_MEMORY


def test_the_cli_offers_exactly_those_choices(tmp_path):
    from typer.testing import CliRunner

    for args, values in ((["generate", str(tmp_path), "--kind"], choices.GENERATE_KINDS),
                         (["generate", str(tmp_path), "--format"], choices.OUTPUT_FORMATS),
                         (["generate", str(tmp_path), "--encoding"], choices.GENERATE_ENCODINGS),
                         (["convert", "a.tif", "b.tif", "--encoding"], choices.CONVERT_ENCODINGS),
                         (["detect", "a.tif", "b.tif", "--body-polarity"], ("dark", "bright"))):
        result = CliRunner().invoke(app, [*args, "bogus"])
        assert result.exit_code == 2
        listed = ", ".join(repr(v) for v in values)
        text = " ".join(result.output.replace("\u2502", " ").split())  # no panel borders
        assert f"'bogus' is not one of {listed}" in text, result.output


def test_shared_options_read_the_same_in_every_command():
    shared = ("threshold", "body_threshold", "dye_threshold", "body_polarity", "dye_polarity",
              "page", "allow_external", "strict", "cutoff", "quiet")
    detect, batch, preview = _params("detect"), _params("batch"), _params("preview")
    for name in shared:
        assert detect[name].help == batch[name].help == preview[name].help, name
        assert detect[name].opts == batch[name].opts == preview[name].opts, name


def test_help_loads_neither_numpy_nor_a_reader():
    code = ("import sys\n"
            "from dragon_gpu.cli import main\n"
            "sys.argv = ['dragon-gpu', 'detect', '--help']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('numpy', 'h5py', 'tifffile', 'zarr', 'dragon_gpu.pipeline',"
            " 'dragon_gpu.io') if m in sys.modules]\n"
            "print('HEAVY', heavy)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert "HEAVY []" in out.stdout, out.stdout + out.stderr
