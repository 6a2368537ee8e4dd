"""``batch`` with the CUDA engine, on the stand-in for CuPy in every worker process.

Checks the default number of workers per GPU and their spread over the GPUs named, and that a
worker whose GPU context died is replaced rather than reused for the next pairs.
"""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
import pytest
import tifffile

from dragon_gpu.batching import run_batch
from dragon_gpu.gpu_batch import WORKERS_PER_GPU, plan_workers
from tests.helpers import cuda_emulation as emu
from tests.helpers.fake_cupy import FakeGpu
from tests.helpers.fake_gpu_task import task


@pytest.fixture
def colony(tmp_path, monkeypatch):
    if emu.compiler() is None:
        pytest.skip("no C++ compiler to emulate the kernels on the CPU")
    workdir = tmp_path / "kernels"
    workdir.mkdir()
    (tmp_path / "fake_gpu.json").write_text(json.dumps({"workdir": str(workdir), "devices": 2}))
    FakeGpu(workdir, devices=2).install(monkeypatch)  # the parent sees the same two GPUs
    rng = np.random.default_rng(31)
    want = {}

    def pairs(names):
        out = []
        for name in names:
            body = rng.integers(0, 256, size=(24, 40), dtype=np.uint8)
            dye = rng.integers(0, 256, size=(24, 40), dtype=np.uint8)
            tifffile.imwrite(tmp_path / f"{name}.tif", body, rowsperstrip=8)
            tifffile.imwrite(tmp_path / f"{name}-dye.tif", dye, rowsperstrip=8)
            want[name] = int((body < 128).sum())
            out.append({"id": name, "body": str(tmp_path / f"{name}.tif"),
                        "dye": str(tmp_path / f"{name}-dye.tif")})
        return out

    def runs():
        lines = (tmp_path / "runs.log").read_text().split("\n")
        return [line.split() for line in lines if line]

    return pairs, runs, want


def test_plan_without_gpus_is_one_worker_per_core(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "cupy", None)  # CuPy absent
    assert plan_workers("auto", None, 8).workers == 8
    assert plan_workers("cpu", None, 8).note == ""


def test_cuda_batch_runs_two_workers_per_gpu_spread_over_them(colony):
    pairs, runs, want = colony
    report = run_batch(pairs([f"p{i}" for i in range(8)]), None, device="0,1", task=task)
    assert [r["status"] for r in report.records] == ["ok"] * 8
    assert {r["id"]: r["body_pixels"] for r in report.records} == want
    assert report.summary()["gpu_workers"] == f"{2 * WORKERS_PER_GPU} workers on GPUs 0,1, " \
                                               f"{WORKERS_PER_GPU} per GPU"
    by_worker = defaultdict(set)
    for pid, _, backend in runs():
        by_worker[pid].add(backend)
    assert all(len(b) == 1 for b in by_worker.values()), by_worker  # one GPU per worker
    assert len(by_worker) <= 2 * WORKERS_PER_GPU
    assert set().union(*by_worker.values()) <= {"cuda:0", "cuda:1"}


def test_a_worker_whose_gpu_died_is_replaced(colony, capsys):
    pairs, runs, want = colony
    report = run_batch(pairs(["boom", "a", "b", "c"]), None, device="0", workers=1, task=task)
    rows = {r["id"]: r for r in report.records}
    assert rows["boom"]["status"] == "error"
    assert rows["boom"]["error"].startswith("GPU 0 failed: CUDARuntimeError: cudaErrorIllegal")
    for name in "abc":
        assert rows[name]["status"] == "ok", rows[name]
        assert rows[name]["backend"] == "cuda:0" and rows[name]["body_pixels"] == want[name]
    log = runs()
    boom_pid = next(pid for pid, name, _ in log if name == "boom")
    assert all(pid != boom_pid for pid, name, _ in log if name != "boom")  # a new worker
    err = capsys.readouterr().err.splitlines()
    assert err == [f"dragon-gpu: warning: a worker's GPU failed ({rows['boom']['error']}); "
                   "starting new workers"]
