"""``dragon-gpu batch`` and ``dragon_gpu.batch``: local worker processes, resumable results."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import dragon_gpu
from dragon_gpu.batching import (CRASH_MESSAGE, DETECT_KEYS, ManifestError,
                                 ResultsFileError, ResultsLog, read_manifest, read_results,
                                 run_batch)
from dragon_gpu.errors import UsageError
from tests.helpers.batch import (buggy_task, check_ok, crash_task, write_pair,
                                 write_pattern_pair)

COLUMNS = ["id", "status", "error", *DETECT_KEYS]


def cli(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dragon_gpu", *map(str, args)],
                          capture_output=True, text=True, timeout=120, **kwargs)


def write_manifest(path: Path, rows, header=("id", "body", "dye")) -> Path:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def rows_of(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture
def mixed(tmp_path):
    """A manifest in its own folder naming pairs of every format by relative paths, plus one
    absolute path; returns (manifest, {id: truth})."""
    root = tmp_path / "colony"
    truths = {
        "u8": write_pair(root / "plates" / "a", "u8", (37, 29), 1, "u8"),
        "tiled": write_pair(root / "plates" / "b", "tiled", (40, 33), 2, "u8tiled"),
        "bits": write_pair(root / "bits", "bits", (71, 45), 3, "bits"),
        "h5": write_pair(root / "h5", "h5", (23, 17), 4, "h5"),
        "mask": write_pair(tmp_path / "elsewhere", "mask", (50, 9), 5, "h5mask"),
    }
    rows = []
    for pid, t in truths.items():
        body = os.path.relpath(t["body"], root) if pid != "mask" else str(t["body"])
        rows.append((pid, body, os.path.relpath(t["dye"], root)))
    return write_manifest(root / "manifest.csv", rows), truths


def test_every_format_relative_paths_exact_counts(mixed, tmp_path, monkeypatch):
    manifest, truths = mixed
    monkeypatch.chdir(tmp_path)  # paths are relative to the manifest, not the current folder
    out = tmp_path / "results.csv"
    report = run_batch(manifest, out, workers=2, device="cpu")
    assert [r["id"] for r in report.records] == list(truths)  # manifest order
    for record in report.records:
        check_ok(record, truths[record["id"]])
        assert record["backend"] == "cpu"
        assert record["cutoff"] == "0.10"
    assert (report.ok, report.errors, report.ran, report.skipped) == (5, 0, 5, 0)
    assert report.cancer == sum(r["cancer"] for r in report.records)
    # The file holds the same records: header, one row per pair, values as JSON text.
    raw = rows_of(out)
    assert list(raw[0]) == COLUMNS + ["computed_with"]  # then what each row was computed with
    assert sorted(r["id"] for r in raw) == sorted(truths)
    for r in raw:
        assert int(r["body_pixels"]) == truths[r["id"]]["body_pixels"]
        assert json.loads(r["shape"]) == truths[r["id"]]["shape"]
        assert r["cancer"] in ("true", "false") and r["status"] == "ok" and r["error"] == ""
    assert sorted(read_results(out), key=lambda r: r["id"]) == sorted(
        report.records, key=lambda r: r["id"])


def test_cli_batch_summary_and_options(mixed, tmp_path):
    manifest, truths = mixed
    out = tmp_path / "r.csv"
    proc = cli("batch", manifest, "--out", out, "--workers", "2", "--cutoff", "45%", "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    cancer = sum(t["dye_in_body_pixels"] * 20 > 9 * t["body_pixels"] for t in truths.values())
    assert summary["pairs"] == summary["ok"] == summary["ran"] == 5
    assert (summary["errors"], summary["skipped"], summary["cancer"]) == (0, 0, cancer)
    assert 0 < cancer < 5  # the 45% cutoff splits these pairs, so the option really applies
    for r in read_results(out):
        assert r["cutoff"] == "45%"
        assert r["cancer"] is (truths[r["id"]]["dye_in_body_pixels"] * 20
                               > 9 * truths[r["id"]]["body_pixels"])
    # Text summary; stderr is not a terminal, so no progress bar.
    again = cli("batch", manifest, "--out", out, "--cutoff", "45%")  # the same options: reused
    assert again.returncode == 0
    assert "5 pairs: 5 ok" in again.stdout and "5 already done were skipped" in again.stdout
    assert again.stderr == ""


def test_bad_pairs_are_error_rows_not_the_end(tmp_path):
    good = [write_pair(tmp_path, f"g{i}", (30 + i, 20), 10 + i) for i in range(3)]
    wide = write_pair(tmp_path, "wide", (30, 21), 20)
    (tmp_path / "text.tif").write_text("not an image")
    empty = write_pair(tmp_path, "empty", (8, 8), 21, "bits")
    import numpy as np
    import tifffile
    tifffile.imwrite(empty["body"], np.zeros((8, 8), bool), photometric="miniswhite")  # all white
    rows = [("g0", good[0]["body"], good[0]["dye"]),
            ("missing", tmp_path / "nope.tif", good[0]["dye"]),
            ("g1", good[1]["body"], good[1]["dye"]),
            ("shapes", good[1]["body"], wide["dye"]),
            ("text", tmp_path / "text.tif", good[1]["dye"]),
            ("empty", empty["body"], empty["dye"]),
            ("g2", good[2]["body"], good[2]["dye"])]
    manifest = write_manifest(tmp_path / "m.csv", rows)
    out = tmp_path / "out.csv"
    proc = cli("batch", manifest, "--out", out, "--workers", "2")
    assert proc.returncode == 0, proc.stderr  # the batch ran, error rows and all
    records = {r["id"]: r for r in read_results(out)}
    assert len(records) == len(rows)
    for i in range(3):
        check_ok(records[f"g{i}"], good[i])
    errors = {k: r["error"] for k, r in records.items() if r["status"] == "error"}
    assert set(errors) == {"missing", "shapes", "text", "empty"}
    assert errors["missing"] == f"{tmp_path / 'nope.tif'}: no such file"
    assert "shapes differ" in errors["shapes"]
    assert errors["text"].startswith(f"{tmp_path / 'text.tif'}: ")
    assert "body mask is empty" in errors["empty"]
    assert records["missing"]["body_pixels"] is None and records["missing"]["cancer"] is None
    assert records["missing"]["body_path"] == str(tmp_path / "nope.tif")
    assert "4 errors" in proc.stdout
    assert "dragon-gpu: warning: pair missing: " in proc.stderr


def test_a_bug_in_a_pair_is_an_error_row(tmp_path):
    good = write_pair(tmp_path, "good", (12, 12), 1)
    bug = write_pair(tmp_path, "bug", (12, 12), 2)
    report = run_batch([(good["body"], good["dye"]), (bug["body"], bug["dye"])], workers=1,
                       task=buggy_task)
    check_ok(report.records[0], good)
    assert report.records[1]["error"] == "internal error: ZeroDivisionError: a bug"


def test_a_crashing_worker_costs_one_row(tmp_path):
    pairs = [write_pair(tmp_path, f"p{i}", (25, 19), 30 + i) for i in range(5)]
    crash = write_pair(tmp_path, "crash", (25, 19), 40)
    items = [{"id": f"p{i}", "body": t["body"], "dye": t["dye"]} for i, t in enumerate(pairs[:2])]
    items.append({"id": "crash", "body": crash["body"], "dye": crash["dye"]})
    items += [{"id": f"p{i}", "body": t["body"], "dye": t["dye"]} for i, t in enumerate(pairs)
              if i >= 2]
    out = tmp_path / "out.csv"
    report = run_batch(items, out, workers=2, task=crash_task)
    assert report.crashed == ["crash"]
    by_id = {r["id"]: r for r in read_results(out)}
    assert len(by_id) == 6 == len(rows_of(out))
    assert by_id["crash"]["status"] == "error" and by_id["crash"]["error"] == CRASH_MESSAGE
    for i, truth in enumerate(pairs):
        check_ok(by_id[f"p{i}"], truth)


def test_error_rows_run_again_and_keep_one_row_per_pair(tmp_path):
    a = write_pair(tmp_path, "a", (10, 10), 1)
    late = tmp_path / "late_body.tif"
    manifest = write_manifest(tmp_path / "m.csv", [("a", a["body"], a["dye"]),
                                                   ("late", late, a["dye"])])
    out = tmp_path / "out.csv"
    first = run_batch(manifest, out, workers=1)
    assert [r["status"] for r in first.records] == ["ok", "error"]
    before = out.read_text().splitlines()
    kept = run_batch(manifest, out, workers=1, retry_errors=False)
    assert (kept.ran, kept.skipped) == (0, 2)
    assert out.read_text().splitlines() == before
    os.link(a["body"], late)
    second = run_batch(manifest, out, workers=1)
    assert (second.ran, second.skipped) == (1, 1)
    lines = out.read_text().splitlines()
    a_row = [line for line in before if line.startswith("a,")]
    assert len(a_row) == 1 and a_row[0] in lines  # the ok row is untouched, not recomputed
    assert len(lines) == 3
    by_id = {r["id"]: r for r in read_results(out)}
    assert by_id["late"]["status"] == "ok" and by_id["late"]["body_pixels"] == a["body_pixels"]


def test_kill_and_resume_neither_loses_nor_repeats(tmp_path):
    n = 60
    truths = [write_pattern_pair(tmp_path / "data", f"k{k}", k) for k in range(4)]
    manifest = write_manifest(tmp_path / "data" / "m.csv",
                              [(f"p{i}", f"k{i % 4}_body.tif", f"k{i % 4}_dye.tif")
                               for i in range(n)])
    out = tmp_path / "results.csv"
    proc = subprocess.Popen([sys.executable, "-m", "dragon_gpu", "batch", str(manifest), "--out",
                             str(out), "--workers", "1"], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not (out.exists() and out.read_bytes().count(b"\n") >= 4):
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline
            time.sleep(0.002)
        assert proc.poll() is None  # killed half way, not after the end
        os.killpg(proc.pid, signal.SIGKILL)  # the batch and its worker, as a crash or an OOM would
    finally:
        proc.wait()
    written = out.read_text().splitlines()
    assert 3 <= len(written) - 1 < n
    # A kill in the middle of a write leaves a cut last line; the rerun must repair it.
    with open(out, "a") as fh:
        fh.write("p59,ok,,0.1.0,/cut/in/the/mid")
    proc2 = cli("batch", manifest, "--out", out, "--workers", "1", "--json")
    assert proc2.returncode == 0, proc2.stderr
    summary = json.loads(proc2.stdout)
    assert summary["skipped"] == len(written) - 1 and summary["ran"] == n - summary["skipped"]
    lines = out.read_text().splitlines()
    assert lines[:len(written)] == written  # rows written before the kill are kept as they were
    records = read_results(out)
    assert sorted(r["id"] for r in records) == sorted(f"p{i}" for i in range(n))  # once each
    for r in records:
        check_ok(r, truths[int(r["id"][1:]) % 4])


def test_ctrl_c_stops_with_130_and_complete_rows(tmp_path):
    n = 80
    truths = [write_pattern_pair(tmp_path, f"k{k}", k) for k in range(4)]
    manifest = write_manifest(tmp_path / "m.csv", [(f"p{i}", f"k{i % 4}_body.tif",
                                                    f"k{i % 4}_dye.tif") for i in range(n)])
    out = tmp_path / "out.csv"
    proc = subprocess.Popen([sys.executable, "-m", "dragon_gpu", "batch", str(manifest), "--out",
                             str(out), "--workers", "2"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 60
    while not (out.exists() and out.read_bytes().count(b"\n") >= 3):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.002)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole process group
    stdout, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "dragon-gpu: interrupted"
    assert "Traceback" not in err and stdout == ""
    assert out.read_text().endswith("\n")
    records = read_results(out)
    assert 2 <= len(records) < n
    assert all(r["status"] == "ok" for r in records)  # Ctrl-C never becomes an error row
    for r in records:
        check_ok(r, truths[int(r["id"][1:]) % 4])


@pytest.mark.parametrize("content, problem", [
    ("body,image\na.tif,b.tif\n", "the header has no dye column (found body,image)"),
    ("", "is empty; expected a header with at least body,dye"),
    ("id,body,dye\nx,a.tif,b.tif\nx,c.tif,d.tif\n", "line 3: the id 'x' is already used on line 2"),
    ("body,dye\na.tif,b.tif\na.tif,c.tif\n", "add an id column"),
    ("id,body,dye\nx,,b.tif\n", "line 2: the body path is empty"),
    ("body,dye,body\na,b,c\n", "names the column 'body' twice"),
])
def test_bad_manifest_exits_2_with_one_line(tmp_path, content, problem):
    manifest = tmp_path / "m.csv"
    manifest.write_text(content)
    out = tmp_path / "out.csv"
    proc = cli("batch", manifest, "--out", out)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"dragon-gpu: error: {manifest}: ")
    assert problem in proc.stderr and proc.stderr.count("\n") == 1
    assert not out.exists()


def test_manifest_details(tmp_path):
    (tmp_path / "m.csv").write_bytes(b"\xef\xbb\xbf Body , DYE ,notes\n\na/b.tif,/abs/d.tif,x\n"
                                     b"c.tif,d.tif\n")
    pairs = read_manifest(tmp_path / "m.csv")
    assert [(p.id, p.body, p.dye) for p in pairs] == [
        ("a/b.tif", str(tmp_path / "a" / "b.tif"), "/abs/d.tif"),
        ("c.tif", str(tmp_path / "c.tif"), str(tmp_path / "d.tif"))]
    with pytest.raises(ManifestError, match="no such manifest file"):
        read_manifest(tmp_path / "none.csv")
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00body")
    with pytest.raises(ManifestError, match="not a UTF-8 text file"):
        read_manifest(tmp_path / "bin.csv")


def test_results_file_that_is_not_ours_is_left_alone(tmp_path):
    a = write_pair(tmp_path, "a", (10, 10), 1)
    manifest = write_manifest(tmp_path / "m.csv", [("a", a["body"], a["dye"])])
    before = manifest.read_bytes()
    proc = cli("batch", manifest, "--out", manifest)  # a classic slip: the manifest as --out
    assert proc.returncode == 2
    assert "is not a results file of this version of dragon-gpu batch" in proc.stderr
    assert manifest.read_bytes() == before
    proc = cli("batch", manifest, "--out", tmp_path / "no" / "such" / "dir.csv")
    assert proc.returncode == 2 and "its folder does not exist" in proc.stderr


def test_one_batch_at_a_time_per_results_file(tmp_path):
    out = tmp_path / "out.csv"
    with ResultsLog(out, []):
        with pytest.raises(ResultsFileError, match="being written by another"):
            ResultsLog(out, [])
    with ResultsLog(out, []):  # released on close
        pass


def test_python_api_records_and_frame(tmp_path, monkeypatch):
    truths = [write_pair(tmp_path, f"p{i}", (14, 11), 50 + i) for i in range(2)]
    monkeypatch.chdir(tmp_path)
    records = dragon_gpu.batch([("p0_body.tif", "p0_dye.tif"),
                                {"id": "second", "body": "p1_body.tif", "dye": "p1_dye.tif"}],
                               workers=1, cutoff="0.2")
    assert [r["id"] for r in records] == ["p0_body.tif", "second"]
    for r, t in zip(records, truths):
        check_ok(r, t, cutoff=(1, 5))
        assert r["cutoff"] == "0.2"
    with pytest.raises(ManifestError, match="expected a"):
        dragon_gpu.batch([("only one",)])
    pandas = pytest.importorskip("pandas")
    frame = dragon_gpu.batch([("p0_body.tif", "p0_dye.tif")], workers=1, as_frame=True)
    assert isinstance(frame, pandas.DataFrame)
    assert list(frame.columns) == COLUMNS
    assert int(frame.loc[0, "body_pixels"]) == truths[0]["body_pixels"]


def test_batch_needs_no_dask_and_scheduler_without_it_is_a_clear_error(tmp_path):
    a = write_pair(tmp_path, "a", (10, 10), 1)
    manifest = write_manifest(tmp_path / "m.csv", [("a", a["body"], a["dye"])])
    script = ("import sys; sys.modules['dask'] = sys.modules['distributed'] = None; "
              "sys.modules['dask.distributed'] = None; sys.argv[0] = 'dragon-gpu'; "
              "from dragon_gpu.cli import main; main()")
    ok = subprocess.run([sys.executable, "-c", script, "batch", str(manifest), "--out",
                         str(tmp_path / "o.csv")], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run([sys.executable, "-c", script, "batch", str(manifest), "--out",
                          str(tmp_path / "o2.csv"), "--scheduler", "local"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2
    assert bad.stderr.startswith("dragon-gpu: error: --scheduler needs Dask: pip install "
                                 "'dragon-gpu[dask]'")
    bad = subprocess.run([sys.executable, "-c", script, "detect", str(a["body"]), str(a["dye"]),
                          "--scheduler", "local"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--scheduler needs Dask" in bad.stderr


def test_options_wrong_for_every_pair_fail_the_batch(tmp_path):
    a = write_pair(tmp_path, "a", (10, 10), 1)
    out = tmp_path / "out.csv"
    for kwargs, message in (({"device": "gpu0"}, "device: expected auto, cpu"),
                            ({"device": "cpu", "require_gpu": True}, "require_gpu contradicts device cpu"),
                            ({"cutoff": "1.5"}, "cutoff: must be between 0 and 1"),
                            ({"workers": 0}, "^workers: must be at least 1"),
                            ({"colour": "red"}, "unknown detection option")):
        with pytest.raises(UsageError, match=message):
            run_batch([(a["body"], a["dye"])], out, **kwargs)
    assert not out.exists()


def test_detect_workers_needs_a_scheduler(tmp_path):
    a = write_pair(tmp_path, "a", (10, 10), 1)
    proc = cli("detect", a["body"], a["dye"], "--workers", "2")
    assert proc.returncode == 2
    assert proc.stderr == ("dragon-gpu: error: --workers needs --scheduler (a local detect runs "
                           "in one process)\n")
