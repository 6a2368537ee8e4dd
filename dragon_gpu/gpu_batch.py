"""The GPUs of a local batch, under its earlier name: see :mod:`dragon_gpu.batching.gpu`."""

from .batching.gpu import (WORKERS_PER_GPU, WorkerPlan, init_worker, lost_line, plan_workers,
                           run_pair_on_gpu)

__all__ = ["WORKERS_PER_GPU", "WorkerPlan", "init_worker", "lost_line", "plan_workers",
           "run_pair_on_gpu"]
