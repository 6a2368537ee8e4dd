"""Ctrl-C during a long command exits 130 with one line on stderr and nothing on stdout; a
command that writes files leaves nothing under their final names, nor its temporary files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

SIDE = 8192


@pytest.fixture(scope="module")
def big_pair(tmp_path_factory):
    """An 8k x 8k uncompressed uint8 pair (64 MiB each), written in row slabs."""
    folder = tmp_path_factory.mktemp("interrupt")
    row = (np.arange(SIDE) % 256).astype(np.uint8)
    slab = np.broadcast_to(row, (512, SIDE))
    paths = []
    for name in ("body", "dye"):
        path = folder / f"{name}.h5"
        with h5py.File(path, "w") as f:
            ds = f.create_dataset("mask", shape=(SIDE, SIDE), dtype=np.uint8)
            for r in range(0, SIDE, 512):
                ds[r:r + 512] = slab
        paths.append(path)
    yield paths
    for path in paths:
        path.unlink()


def _has_open(pid: int, path) -> bool:
    try:
        return any(os.readlink(f"/proc/{pid}/fd/{fd}") == str(path)
                   for fd in os.listdir(f"/proc/{pid}/fd"))
    except OSError:  # the process is gone, or a descriptor closed meanwhile
        return False


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to see the run start")
def test_ctrl_c_during_detect_exits_130_with_one_line(big_pair):
    body, dye = big_pair
    # One-row blocks make the count take seconds, so the signal lands mid-run.
    proc = subprocess.Popen([sys.executable, "-m", "dragon_gpu", "detect", str(body), str(dye),
                             "--device", "cpu", "--block-rows", "1", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        start = time.monotonic()
        while not _has_open(proc.pid, dye):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() - start < 30, "detect did not open its inputs"
            time.sleep(0.02)
        time.sleep(0.3)  # both files are open: the count is under way
        assert proc.poll() is None, "detect finished before it could be interrupted"
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, (proc.returncode, err)
    assert err.splitlines() == ["dragon-gpu: interrupted"], err
    assert out == ""
    assert time.monotonic() - sent < 10  # it stops promptly, it does not finish the count


def _interrupt_when_writing(args, folder, settle=0.0, signum=signal.SIGINT, seen=None):
    """Start ``dragon-gpu ARGS``, send ``signum`` once a temporary ``.part`` file shows in
    ``folder`` (after ``settle`` seconds); returns (exit code, stdout, stderr). ``seen``, a list,
    receives the process and the children it had when the signal was sent."""
    proc = subprocess.Popen([sys.executable, "-m", "dragon_gpu", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        start = time.monotonic()
        while not (folder.is_dir() and any(p.name.endswith(".part") for p in folder.iterdir())):
            assert proc.poll() is None, ("finished before writing was seen", proc.communicate())
            assert time.monotonic() - start < 60, "no temporary file appeared"
            time.sleep(0.002)
        time.sleep(settle)
        assert proc.poll() is None, "finished before it could be interrupted"
        if seen is not None:
            import psutil

            parent = psutil.Process(proc.pid)
            seen.extend([parent, *parent.children(recursive=True)])
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, out, err


def test_ctrl_c_during_generate_leaves_no_file(tmp_path):
    outdir = tmp_path / "pair"
    # One-row strips make an 8k pair take seconds to write.
    code, out, err = _interrupt_when_writing(
        ["generate", outdir, "--size", SIDE, "--rows-per-strip", 1, "--quiet"], outdir, 0.3)
    assert code == 130, (code, err)
    assert err.splitlines() == ["dragon-gpu: interrupted"], err
    assert out == ""
    assert sorted(p.name for p in outdir.iterdir()) == []  # no body, dye, truth, nor .part


def test_ctrl_c_during_convert_leaves_no_file(big_pair, tmp_path):
    body, _dye = big_pair
    folder = tmp_path / "out"
    folder.mkdir()
    code, out, err = _interrupt_when_writing(
        ["convert", body, folder / "body.tif", "--rows-per-strip", 1, "--compression", "lzw",
         "--quiet"], folder)
    assert code == 130, (code, err)
    assert err.splitlines() == ["dragon-gpu: interrupted"], err
    assert out == ""
    assert sorted(p.name for p in folder.iterdir()) == []


def _none_alive(processes) -> bool:
    return not any(p.is_running() and p.status() != "zombie" for p in processes)


def test_sigterm_during_generate_exits_143_and_leaves_nothing(tmp_path):
    outdir = tmp_path / "pair"
    seen: list = []
    code, out, err = _interrupt_when_writing(
        ["generate", outdir, "--size", SIDE, "--rows-per-strip", 1, "--quiet"], outdir, 0.3,
        signal.SIGTERM, seen)
    assert code == 143, (code, err)
    assert err.splitlines() == ["dragon-gpu: terminated"], err
    assert out == ""
    assert sorted(p.name for p in outdir.iterdir()) == []  # no body, dye, truth, nor .part
    assert seen and _none_alive(seen)


def test_sigterm_during_convert_exits_143_and_leaves_nothing(big_pair, tmp_path):
    body, _dye = big_pair
    folder = tmp_path / "out"
    folder.mkdir()
    seen: list = []
    code, out, err = _interrupt_when_writing(
        ["convert", body, folder / "body.h5", "--rows-per-strip", 1, "--compression", "gzip",
         "--quiet"], folder, 0.2, signal.SIGTERM, seen)
    assert code == 143, (code, err)
    assert err.splitlines() == ["dragon-gpu: terminated"], err
    assert out == ""
    assert sorted(p.name for p in folder.iterdir()) == []
    assert seen and _none_alive(seen)


def test_after_a_kill_the_next_run_removes_the_stale_temporaries(tmp_path):
    """SIGKILL cannot be handled: its temporaries stay, and the next generate of that folder
    removes them (they carry the pid of a process that no longer runs)."""
    outdir = tmp_path / "pair"
    code, _, _ = _interrupt_when_writing(
        ["generate", outdir, "--size", SIDE, "--rows-per-strip", 1, "--quiet"], outdir, 0.3,
        signal.SIGKILL)
    assert code == -signal.SIGKILL
    left = sorted(p.name for p in outdir.iterdir())
    assert len(left) == 3 and all(n.endswith(".part") for n in left), left
    proc = subprocess.run([sys.executable, "-m", "dragon_gpu", "generate", str(outdir),
                           "--size", "64", "-q"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in outdir.iterdir()) == ["body.tif", "dye.tif", "truth.json"]
