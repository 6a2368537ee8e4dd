"""Results records, one per pair, and the per-pair task that makes them.

Both runners (the local pool, :mod:`.local`, and Dask, :mod:`.dask_runner`) run
:func:`run_pair` in their workers and hand its records to the driver.
"""

from __future__ import annotations

from typing import Callable

from ..errors import DragonError
from ..pipeline import DETECT_JSON_KEYS, DetectOptions, DetectResult
from .manifest import Pair

#: Keys of the detect JSON kept in a results record, in its order. Where each input was decoded
#: (``decode``) describes the run, not the pair: it is left out.
DETECT_KEYS = tuple(key for key in DETECT_JSON_KEYS if key != "decode")
#: Columns of a results record (and of :func:`~dragon_gpu.batching.batch`'s data frame).
RESULT_COLUMNS = ("id", "status", "error") + DETECT_KEYS

STATUS_OK = "ok"
STATUS_ERROR = "error"
CRASH_MESSAGE = ("the worker process died while counting this pair (a crash inside a native "
                 "library, or killed by the system, e.g. out of memory)")

Task = Callable[..., DetectResult]
#: ``emit(record)``: what a runner calls on the driver's side as each pair finishes.
Emit = Callable[[dict], None]


def ok_record(pair_id: str, result: dict) -> dict:
    """The results row of a pair that was decided (``result`` is the detect JSON object)."""
    return {"id": pair_id, "status": STATUS_OK, "error": None,
            **{k: result.get(k) for k in DETECT_KEYS}}


def error_record(pair: Pair, message: str) -> dict:
    """The results row of a pair that could not be decided."""
    record = {"id": pair.id, "status": STATUS_ERROR, "error": one_line(message),
              **dict.fromkeys(DETECT_KEYS)}
    record["body_path"] = pair.body
    record["dye_path"] = pair.dye
    return record


def one_line(text: str) -> str:
    """Messages become one physical line, so a results row is always one line of the file."""
    return " ".join(str(text).split())


def run_pair(pair: Pair, options: DetectOptions, task: Task | None = None) -> dict:
    """Decide one pair and return its results record; never raises for a bad pair.

    ``task(body, dye, options)`` defaults to :func:`dragon_gpu.pipeline.detect`. A
    :class:`DragonError` (bad input) and any other exception (a bug) become an ``error`` record,
    so one pair never ends the batch.
    """
    if task is None:
        from ..pipeline import detect as task
    try:
        result = task(pair.body, pair.dye, options)
        return ok_record(pair.id, result.to_dict())
    except DragonError as exc:
        return error_record(pair, str(exc))
    except Exception as exc:  # a bug, reported in the row rather than ending the batch
        return error_record(pair, f"internal error: {type(exc).__name__}: {exc}")
