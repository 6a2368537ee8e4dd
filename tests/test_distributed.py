"""The Dask driver on a real LocalCluster of worker processes on loopback."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")

from dragon_gpu.batching import CRASH_MESSAGE, read_results, run_batch  # noqa: E402
from dragon_gpu.distributed import connect, detect as dask_detect, split_rows  # noqa: E402
from dragon_gpu.errors import (DragonError, MemoryBudgetError, ShapeMismatchError,  # noqa: E402
                               UsageError)
from dragon_gpu.model import RowRange  # noqa: E402
from dragon_gpu.pipeline import detect as local_detect, plan_blocks  # noqa: E402
from tests.helpers.batch import (RUN_KEYS, check_ok, crash_task, without_run_keys,  # noqa: E402
                                 write_pair)


@pytest.fixture(scope="module")
def cluster():
    """Two single-threaded worker processes. A worker holds one task at a time (saturation 1.0)
    and a task that kills two workers is given up (allowed-failures 1), so the crash test is
    deterministic and quick."""
    config = {"distributed.scheduler.worker-saturation": 1.0,
              "distributed.scheduler.allowed-failures": 1}
    with dask.config.set(config):
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      host="127.0.0.1", dashboard_address=None,
                                      silence_logs=40) as lc:
            yield lc.scheduler_address


@pytest.fixture(scope="module")
def colony(tmp_path_factory):
    root = tmp_path_factory.mktemp("colony")
    fmts = ["u8", "bits", "h5", "h5mask", "u8tiled", "u8"]
    truths = {f"p{i}": write_pair(root / "plates", f"p{i}", (41 + 3 * i, 37 - i), 100 + i, fmt)
              for i, fmt in enumerate(fmts)}
    rows = ["id,body,dye"] + [f"{k},plates/{t['body'].name},plates/{t['dye'].name}"
                              for k, t in truths.items()]
    rows.append("bad,plates/none.tif,plates/p0_dye.tif")
    manifest = root / "manifest.csv"
    manifest.write_text("\n".join(rows) + "\n")
    return manifest, truths


def test_batch_on_a_cluster_gives_the_rows_of_the_local_path(cluster, colony, tmp_path):
    manifest, truths = colony
    on_cluster = run_batch(manifest, tmp_path / "dask.csv", scheduler=cluster)
    local = run_batch(manifest, tmp_path / "local.csv", workers=2)
    assert [r["id"] for r in on_cluster.records] == list(truths) + ["bad"]
    for record in on_cluster.records[:-1]:
        check_ok(record, truths[record["id"]])
    assert on_cluster.records[-1]["status"] == "error"
    assert "none.tif: no such file" in on_cluster.records[-1]["error"]
    assert ([without_run_keys(r) for r in on_cluster.records]
            == [without_run_keys(r) for r in local.records])
    assert sorted(map(without_run_keys, read_results(tmp_path / "dask.csv")),
                  key=lambda r: r["id"]) == sorted(map(without_run_keys, local.records),
                                                   key=lambda r: r["id"])
    # Resuming on the cluster skips the ok rows and runs the bad pair again.
    again = run_batch(manifest, tmp_path / "dask.csv", scheduler=cluster)
    assert (again.ran, again.skipped) == (1, len(truths))


def test_a_pair_that_kills_workers_is_one_error_row(cluster, tmp_path):
    good = [write_pair(tmp_path, f"g{i}", (20, 20), 200 + i) for i in range(3)]
    crash = write_pair(tmp_path, "crash", (20, 20), 210)
    items = [(good[0]["body"], good[0]["dye"]), (crash["body"], crash["dye"]),
             (good[1]["body"], good[1]["dye"]), (good[2]["body"], good[2]["dye"])]
    report = run_batch(items, scheduler=cluster, task=crash_task)
    assert report.crashed == [str(crash["body"])]
    records = {r["id"]: r for r in report.records}
    assert records[str(crash["body"])]["error"].startswith(CRASH_MESSAGE)
    for truth in good:
        check_ok(records[str(truth["body"])], truth)
    with distributed.Client(cluster) as client:  # the next tests expect both workers back
        client.wait_for_workers(2, timeout=60)


@pytest.mark.parametrize("fmt, shape, block_rows", [("u8", (103, 45), 7), ("bits", (64, 77), 1),
                                                    ("h5", (50, 13), None)])
def test_detect_on_a_cluster_equals_local_detect(cluster, tmp_path, fmt, shape, block_rows):
    truth = write_pair(tmp_path, "pair", shape, 300, fmt)
    ticks = []
    on_cluster = dask_detect(truth["body"], truth["dye"], scheduler=cluster, block_rows=block_rows,
                             progress=lambda done, total: ticks.append((done, total))).to_dict()
    if block_rows is not None:  # split into 4 tasks per worker thread (2 threads here)
        assert len(ticks) == min(8, -(-shape[0] // block_rows))
    assert ticks[-1] == (shape[0], shape[0])
    local = local_detect(truth["body"], truth["dye"], device="cpu").to_dict()
    assert on_cluster["backend"] == "cpu"
    assert without_run_keys(on_cluster) == without_run_keys(local)
    check_ok({"status": "ok", "error": None, **on_cluster}, truth)


def test_detect_on_a_cluster_reports_bad_input_from_the_workers(cluster, tmp_path):
    a = write_pair(tmp_path, "a", (20, 20), 1)
    b = write_pair(tmp_path, "b", (20, 21), 2)
    with pytest.raises(ShapeMismatchError, match="shapes differ"):
        dask_detect(a["body"], b["dye"], scheduler=cluster)
    with pytest.raises(MemoryBudgetError) as local:
        local_detect(a["body"], a["dye"], memory=64)
    with pytest.raises(MemoryBudgetError) as on_cluster:
        dask_detect(a["body"], a["dye"], scheduler=cluster, memory=64)
    assert str(on_cluster.value) == str(local.value)
    with pytest.raises(UsageError, match="workers applies to scheduler local"):
        dask_detect(a["body"], a["dye"], scheduler=cluster, workers=2)


def test_detect_on_a_cluster_reports_a_corrupt_strip_met_by_one_task(cluster, tmp_path):
    import numpy as np
    import tifffile

    a = write_pair(tmp_path, "a", (64, 40), 1)
    rng = np.random.default_rng(5)
    tifffile.imwrite(a["dye"], rng.integers(0, 256, (64, 40), dtype=np.uint8), rowsperstrip=8,
                     compression="zlib")
    with tifffile.TiffFile(a["dye"]) as tif:  # garble one strip in the middle of the image
        offset, count = tif.pages[0].dataoffsets[5], tif.pages[0].databytecounts[5]
    with open(a["dye"], "r+b") as fh:
        fh.seek(offset)
        fh.write(b"\xff" * count)
    with pytest.raises(DragonError) as local:
        local_detect(a["body"], a["dye"], device="cpu")
    with pytest.raises(DragonError) as on_cluster:
        dask_detect(a["body"], a["dye"], scheduler=cluster, block_rows=8)
    assert type(on_cluster.value) is type(local.value)
    assert str(on_cluster.value) == str(local.value)


def test_cli_detect_scheduler_local_equals_local_detect(tmp_path):
    truth = write_pair(tmp_path, "pair", (90, 61), 400, "u8tiled")
    base = [sys.executable, "-m", "dragon_gpu", "detect", str(truth["body"]), str(truth["dye"]),
            "--json"]
    on_cluster = subprocess.run(base + ["--scheduler", "local", "--workers", "2",
                                        "--block-rows", "16"],
                                capture_output=True, text=True, timeout=120)
    local = subprocess.run(base, capture_output=True, text=True, timeout=60)
    assert on_cluster.returncode == 0, on_cluster.stderr
    got, want = json.loads(on_cluster.stdout), json.loads(local.stdout)
    assert got["backend"] == "cpu"
    assert {k: v for k, v in got.items() if k not in RUN_KEYS} == {
        k: v for k, v in want.items() if k not in RUN_KEYS}
    assert got["body_pixels"] == truth["body_pixels"]
    assert got["dye_in_body_pixels"] == truth["dye_in_body_pixels"]


def test_cli_batch_scheduler_local(colony, tmp_path):
    manifest, truths = colony
    out = tmp_path / "out.csv"
    proc = subprocess.run([sys.executable, "-m", "dragon_gpu", "batch", str(manifest), "--out",
                           str(out), "--scheduler", "local", "--workers", "2", "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert (summary["ok"], summary["errors"]) == (len(truths), 1)
    for record in read_results(out):
        if record["id"] != "bad":
            check_ok(record, truths[record["id"]])


def test_connect_errors_are_clear(tmp_path):
    with pytest.raises(UsageError, match="cannot connect to the Dask scheduler at "
                                         "tcp://127.0.0.1:9"):
        with connect("tcp://127.0.0.1:9", timeout=2):
            pass
    with pytest.raises(UsageError, match="workers: must be at least 1"):
        with connect("local", workers=0):
            pass


def test_split_rows_covers_the_blocks_in_order():
    blocks = plan_blocks(1000, 10, (7,), 1 << 30, block_rows=21)
    for parts in (1, 3, 8, len(blocks), len(blocks) + 5):
        ranges = split_rows(blocks, parts)
        assert len(ranges) == min(parts, len(blocks))
        assert ranges[0].row_start == 0 and ranges[-1].row_stop == 1000
        assert all(a.row_stop == b.row_start for a, b in zip(ranges, ranges[1:]))
        edges = {b.row_start for b in blocks}
        assert all(r.row_start in edges for r in ranges)
    assert split_rows([RowRange(0, 5)], 4) == [RowRange(0, 5)]


def test_detect_on_a_cluster_with_a_threshold_method(cluster, tmp_path):
    """The method is computed once on the whole image and every task counts with its integer:
    the result equals the local detect's, thresholds and methods included."""
    import numpy as np
    import tifffile

    rng = np.random.default_rng(8)
    body = rng.normal(110, 40, (90, 33)).clip(0, 255).astype(np.uint16) * 250
    dye = rng.normal(90, 50, (90, 33)).clip(0, 255).astype(np.uint8)
    tifffile.imwrite(tmp_path / "body.tif", body, rowsperstrip=8)
    tifffile.imwrite(tmp_path / "dye.tif", dye, rowsperstrip=8)
    on_cluster = dask_detect(tmp_path / "body.tif", tmp_path / "dye.tif", scheduler=cluster,
                             block_rows=8, threshold="otsu").to_dict()
    local = local_detect(tmp_path / "body.tif", tmp_path / "dye.tif", device="cpu",
                         threshold="otsu").to_dict()
    assert without_run_keys(on_cluster) == without_run_keys(local)
    assert on_cluster["body_threshold_method"] == on_cluster["dye_threshold_method"] == "otsu"
    tb, td = on_cluster["body_threshold"], on_cluster["dye_threshold"]
    assert on_cluster["body_pixels"] == int((body < tb).sum())
    assert on_cluster["dye_in_body_pixels"] == int(((body < tb) & (dye >= td)).sum())
