"""How ``batch`` uses GPUs: a few workers per GPU, each bound to one, and replaced if it dies.

With the CPU engine a batch runs one worker process per core. With the CUDA engine each worker
holds a CUDA context, a pinned ring and its compiled kernels on its GPU, so one per core (64 on
a 64-core host) would put 64 contexts on GPU 0. Instead the batch defaults to
:data:`WORKERS_PER_GPU` workers per GPU named by ``--device`` and binds worker ``k`` to GPU
``k mod n``; the run summary says what was chosen.

A worker whose GPU context died (a CUDA error other than out-of-memory; see
:mod:`dragon_gpu.engines.gpu._context`) stops taking pairs: the pair that hit the error keeps
its error row, any pair it is handed afterwards goes back to the queue, and the batch starts
fresh workers (fresh contexts) for the rest.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass, replace

from .records import run_pair

#: Worker processes per GPU by default: two keep a GPU busy while the other decodes.
WORKERS_PER_GPU = 2

_device: str | None = None  # this worker's --device, set by init_worker


@dataclass(frozen=True)
class WorkerPlan:
    """The workers of a local batch."""

    workers: int
    #: ``--device`` of each worker, one per worker (``None``: every worker uses the batch's).
    devices: tuple[str, ...] | None = None
    #: what was chosen, for the run summary (empty for the CPU engine).
    note: str = ""


def plan_workers(device: str, workers: int | None, cores: int) -> WorkerPlan:
    """How many workers, and on which GPU each, for ``--device device`` and ``--workers``.

    The CUDA engine is assumed where CuPy imports and sees the GPUs named (``auto``: GPU 0);
    this creates no CUDA context in the parent. Each worker still probes its GPU and falls back
    (or fails, with ``--require-gpu``) as a single ``detect`` would.
    """
    from ..engines import parse_device

    spec = parse_device(device)
    ids = [] if spec == "cpu" else [0] if spec == "auto" else list(spec)
    if not ids or not _gpus_present(ids):
        return WorkerPlan(cores if workers is None else workers)
    n = WORKERS_PER_GPU * len(ids) if workers is None else workers
    devices = tuple("auto" if spec == "auto" else str(ids[k % len(ids)]) for k in range(n))
    label = ",".join(map(str, ids))
    gpus = "GPU" if len(ids) == 1 else "GPUs"
    default = f", {WORKERS_PER_GPU} per GPU" if workers is None else ""
    return WorkerPlan(n, devices, f"{n} worker{'s' if n != 1 else ''} on {gpus} {label}{default}")


def _gpus_present(ids: list[int]) -> bool:
    if "cupy" not in sys.modules and importlib.util.find_spec("cupy") is None:
        return False
    from ..engines.gpu import device_count

    return max(ids) < device_count()


def init_worker(base_init, base_args: tuple, slots) -> None:
    """Pool initializer: the batch's own set-up, then this worker's GPU from ``slots``."""
    global _device
    base_init(*base_args)
    if slots is not None:
        _device = slots.get()


def run_pair_on_gpu(pair, options, task=None):
    """Worker side of a GPU batch: ``(record, lost)``.

    ``record`` is the pair's results record (``None`` when this worker's GPU had already died:
    the pair goes back to the queue); ``lost`` says this worker's GPU context is dead, so the
    batch replaces its workers.
    """
    from ..engines.gpu._context import dead_devices

    if dead_devices():
        return None, True
    if _device is not None:
        options = replace(options, device=_device)
    record = run_pair(pair, options, task)
    return record, bool(dead_devices())


def lost_line(record: dict | None) -> str:
    """The one line the batch prints when it replaces workers after a GPU context died."""
    why = f" ({record['error']})" if record and record.get("error") else ""
    return f"dragon-gpu: warning: a worker's GPU failed{why}; starting new workers"
