"""The two entry points of a fresh clone: `make demo` installs the core only, `make test` the
test extra; pyproject's metadata uses the forms current setuptools accepts without warning."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _dry_run(target: str, venv: Path) -> str:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    # -n: print the commands only; a VENV that does not exist makes every step due.
    proc = subprocess.run(["make", "-n", "-C", str(ROOT), target, f"VENV={venv}"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_make_demo_installs_only_the_core(tmp_path):
    out = _dry_run("demo", tmp_path / "venv")
    installs = [line for line in out.splitlines() if "pip install" in line and "-e" in line]
    assert installs and all("[test]" not in line for line in installs), out
    assert "dragon-gpu demo" in out


def test_make_test_installs_the_test_extra(tmp_path):
    out = _dry_run("test", tmp_path / "venv")
    assert "-e '.[test]'" in out and "pytest" in out


def test_license_is_an_spdx_string_for_a_setuptools_that_reads_it():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["project"]["license"] == "BSD-3-Clause"
    requires = meta["build-system"]["requires"]
    assert any(r.replace(" ", "").startswith("setuptools>=") and
               int(r.split(">=")[1].split(".")[0]) >= 77 for r in requires), requires
