"""Decide many pairs: a manifest in, one results row per pair out, resumable.

The manifest is a CSV file with a header naming at least ``body`` and ``dye`` (paths relative to
the manifest's folder) and optionally ``id``. The results file (``RESULTS.csv``) is an append-only
log: one row per pair, ``id, status, error``, the keys of the detect JSON and what the row was
computed with, written and flushed to disk (``fsync``) as each pair finishes. Running the same
batch again skips the pairs already ``ok`` in it (unless their options or input files changed),
so a killed batch resumes without losing or repeating work.

The package, by layer (each module imports only those above it):

- :mod:`.manifest`: the pairs (:class:`Pair`) of a manifest file or of Python values;
- :mod:`.records`: a results record per pair, and :func:`run_pair`, the per-pair task;
- :mod:`.stamps`: what a row was computed with (options digest, inputs' size and mtime);
- :mod:`.journal`: RESULTS.csv (:class:`ResultsLog`, :func:`read_results`);
- :mod:`.gpu`: the workers' GPUs in a local batch with the CUDA engine;
- :mod:`.local`: the local runner, a pool of worker processes;
- :mod:`.cluster`: Dask addresses and connections (Dask is optional);
- :mod:`.dask_runner`: the Dask runner, pairs as tasks;
- :mod:`.dask_detect`: one huge pair split into row-range tasks (``detect --scheduler``);
- :mod:`.driver`: :func:`run_batch` and :func:`batch`, which read the manifest, open the journal
  and hand the pairs to one runner. The runners share records and the task, never each other.

The package is named ``batching`` rather than ``batch`` because a submodule ``dragon_gpu.batch``
would replace the function :func:`dragon_gpu.batch` as an attribute of the package once imported.
"""

from .driver import BatchReport, Progress, batch, run_batch
from .journal import FILE_COLUMNS, ResultsFileError, ResultsLog, format_row, read_results
from .manifest import ManifestError, Pair, as_pairs, read_manifest
from .records import (CRASH_MESSAGE, DETECT_KEYS, RESULT_COLUMNS, STATUS_ERROR, STATUS_OK, Emit,
                      Task, error_record, ok_record, run_pair)
from .stamps import RESULT_OPTIONS, options_digest, stamp

__all__ = ["BatchReport", "CRASH_MESSAGE", "DETECT_KEYS", "Emit", "FILE_COLUMNS", "ManifestError",
           "Pair", "Progress", "RESULT_COLUMNS", "RESULT_OPTIONS", "ResultsFileError",
           "ResultsLog", "STATUS_ERROR", "STATUS_OK", "Task", "as_pairs", "batch", "error_record",
           "format_row", "ok_record", "options_digest", "read_manifest", "read_results",
           "run_batch", "run_pair", "stamp"]
