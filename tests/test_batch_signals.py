"""Signals to ``dragon-gpu batch``: SIGTERM ends it as Ctrl-C does (exit 143, rows intact), and
after a SIGKILL of the batch no worker, forkserver or resource tracker is left running."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time

import pytest

psutil = pytest.importorskip("psutil")

from dragon_gpu.batching import read_results  # noqa: E402
from tests.helpers.batch import check_ok, write_pattern_pair  # noqa: E402


def _batch_running(tmp_path, n: int = 80, workers: int = 2, extra=(), helpers: int = 2):
    """Start a batch of ``n`` pairs and return (process, its descendants, truths, out) once a
    few rows are written and every worker runs (with ``helpers`` more processes: the forkserver
    and the resource tracker of multiprocessing)."""
    truths = [write_pattern_pair(tmp_path, f"k{k}", k) for k in range(4)]
    manifest = tmp_path / "m.csv"
    with open(manifest, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(("id", "body", "dye"))
        writer.writerows((f"p{i}", f"k{i % 4}_body.tif", f"k{i % 4}_dye.tif") for i in range(n))
    out = tmp_path / "out.csv"
    proc = subprocess.Popen([sys.executable, "-m", "dragon_gpu", "batch", str(manifest), "--out",
                             str(out), "--workers", str(workers), *extra], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 60
    while not (out.exists() and out.read_bytes().count(b"\n") >= 3):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.005)
    descendants = psutil.Process(proc.pid).children(recursive=True)
    assert proc.poll() is None
    assert len(descendants) >= workers + helpers, descendants
    return proc, descendants, truths, out


def _alive(processes) -> list:
    left = []
    for p in processes:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                left.append(p)
        except psutil.NoSuchProcess:
            pass
    return left


def _cleanup(proc) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # whatever a failing test left, in its own group
    except (ProcessLookupError, PermissionError):
        pass


def test_sigterm_ends_the_batch_like_ctrl_c(tmp_path):
    proc, descendants, truths, out = _batch_running(tmp_path)
    try:
        proc.send_signal(signal.SIGTERM)  # the batch alone, as `kill PID` or a service manager
        stdout, err = proc.communicate(timeout=30)
        assert proc.returncode == 143, err
        assert err.strip().splitlines()[-1] == "dragon-gpu: terminated"
        assert "Traceback" not in err and stdout == ""
        _, left = psutil.wait_procs(descendants, timeout=5)
        assert not _alive(left), left
        assert out.read_text().endswith("\n")
        records = read_results(out)
        assert 2 <= len(records) < 80
        assert all(r["status"] == "ok" for r in records)  # SIGTERM never becomes an error row
        for r in records:
            check_ok(r, truths[int(r["id"][1:]) % 4])
    finally:
        _cleanup(proc)


def test_sigterm_to_the_process_group_writes_no_error_row(tmp_path):
    proc, descendants, truths, out = _batch_running(tmp_path)
    try:
        os.killpg(proc.pid, signal.SIGTERM)  # as `timeout` or systemd's stop would
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 143, err
        _, left = psutil.wait_procs(descendants, timeout=5)
        assert not _alive(left), left
        records = read_results(out)
        assert records and all(r["status"] == "ok" for r in records)
    finally:
        _cleanup(proc)


def test_after_sigkill_of_the_batch_no_process_is_left(tmp_path):
    proc, descendants, truths, out = _batch_running(tmp_path)
    try:
        proc.kill()  # SIGKILL: the batch cannot clean up; its children must notice
        # Every descendant holds the caller's pipes: communicate() returns only once all exit.
        proc.communicate(timeout=15)
        assert proc.returncode == -signal.SIGKILL
        _, left = psutil.wait_procs(descendants, timeout=5)
        assert not _alive(left), [(p.pid, p.cmdline()) for p in _alive(left)]
        for r in read_results(out):  # the rows written are whole
            check_ok(r, truths[int(r["id"][1:]) % 4])
    finally:
        _cleanup(proc)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_batch_on_a_local_dask_cluster_leaves_no_process(tmp_path, sig):
    pytest.importorskip("distributed")
    proc, descendants, truths, out = _batch_running(tmp_path, n=200, extra=("--scheduler", "local"),
                                                    helpers=0)
    try:
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == (143 if sig == signal.SIGTERM else -signal.SIGKILL), err
        _, left = psutil.wait_procs(descendants, timeout=10)
        assert not _alive(left), [(p.pid, p.cmdline()) for p in _alive(left)]
        records = read_results(out)
        assert records and all(r["status"] == "ok" for r in records)
    finally:
        _cleanup(proc)
