"""RESULTS.csv opened in a spreadsheet program: no cell starts a formula; and the data frame of
``dragon_gpu.batch(as_frame=True)`` keeps its counts exact integers when a row is an error."""

from __future__ import annotations

import csv

import pytest

import dragon_gpu
from dragon_gpu.batching import read_results, run_batch
from tests.helpers.batch import check_ok, write_pair

#: ids as typed (or pasted) into a manifest, and the cell each must become in RESULTS.csv.
IDS = {
    "=cmd|' /C calc'!A0": "'=cmd|' /C calc'!A0",
    "+1+2": "'+1+2",
    "-2+3": "'-2+3",
    "@SUM(A1:A2)": "'@SUM(A1:A2)",
    "\tx": "'\tx",
    "'=quoted": "''=quoted",  # already quoted: one more quote, so reading it back is exact
    "'plain": "'plain",  # a quote before harmless text is left alone
    "a=b": "a=b",  # only the first character matters
}


def test_text_cells_never_start_a_formula_and_read_back_exactly(tmp_path):
    truth = write_pair(tmp_path, "a", (13, 11), 3)
    items = [{"id": pid, "body": truth["body"], "dye": truth["dye"]} for pid in IDS]
    items.append({"id": "=HYPERLINK(\"x\")", "body": tmp_path / "missing.tif", "dye": truth["dye"]})
    out = tmp_path / "R.csv"
    report = run_batch(items, out, workers=1)
    assert [r["id"] for r in report.records] == [*IDS, "=HYPERLINK(\"x\")"]  # as given
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    cells = {row["id"] for row in rows}
    assert cells == {*IDS.values(), "'=HYPERLINK(\"x\")"}
    for row in rows:
        for key, cell in row.items():
            assert cell[:1] not in ("=", "+", "-", "@", "\t", "\r"), (key, cell)
    records = {r["id"]: r for r in read_results(out)}
    assert set(records) == {*IDS, "=HYPERLINK(\"x\")"}
    for pid in IDS:
        check_ok(records[pid], truth)
    assert records["=HYPERLINK(\"x\")"]["status"] == "error"
    again = run_batch(items, out, workers=1, retry_errors=False)  # the ids match on resume
    assert (again.ran, again.skipped) == (0, len(items))


def test_frame_counts_stay_integers_with_an_error_row(tmp_path):
    pandas = pytest.importorskip("pandas")
    good = [write_pair(tmp_path, f"g{i}", (40, 30), 60 + i) for i in range(2)]
    pairs = [{"id": "g0", "body": good[0]["body"], "dye": good[0]["dye"]},
             {"id": "bad", "body": tmp_path / "none.tif", "dye": good[0]["dye"]},
             {"id": "g1", "body": good[1]["body"], "dye": good[1]["dye"]}]
    frame = dragon_gpu.batch(pairs, workers=1, as_frame=True)
    for key in ("body_pixels", "dye_in_body_pixels", "dye_outside_body_pixels", "dye_pixels",
                "body_threshold", "dye_threshold"):
        assert str(frame[key].dtype) == "Int64", (key, frame[key].dtype)
        assert pandas.isna(frame.loc[1, key])
    for row, truth in ((0, good[0]), (2, good[1])):
        for key in ("body_pixels", "dye_in_body_pixels", "dye_outside_body_pixels", "dye_pixels"):
            value = frame.loc[row, key]
            assert value == truth[key] and not isinstance(value, float)
    assert list(frame["status"]) == ["ok", "error", "ok"]


def test_records_hold_the_detect_json_keys_in_order(tmp_path):
    from dragon_gpu.batching import DETECT_KEYS
    from dragon_gpu.pipeline import DETECT_JSON_KEYS

    truth = write_pair(tmp_path, "a", (9, 7), 4)
    result = dragon_gpu.detect(truth["body"], truth["dye"], device="cpu")
    assert tuple(result.to_dict()) == DETECT_JSON_KEYS  # the schema is written once
    assert DETECT_KEYS == tuple(k for k in DETECT_JSON_KEYS if k != "decode")
    assert DETECT_KEYS[:17] == ("version", "body_path", "dye_path", "shape", "body_pixels",
                                "dye_in_body_pixels", "dye_outside_body_pixels", "dye_pixels",
                                "fraction", "cutoff", "cancer", "backend", "seconds",
                                "pixels_per_second", "body_rule", "dye_rule", "warnings")
