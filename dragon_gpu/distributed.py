"""The Dask driver, under its earlier name: see :mod:`dragon_gpu.batching.cluster`,
:mod:`dragon_gpu.batching.dask_runner` and :mod:`dragon_gpu.batching.dask_detect`."""

from .batching.cluster import CONNECT_TIMEOUT, DistributedError, check_scheduler, connect
from .batching.dask_detect import (TASKS_PER_THREAD, PairPlan, count_task, detect, plan_pair,
                                   split_rows)
from .batching.dask_runner import run_pairs

__all__ = ["CONNECT_TIMEOUT", "DistributedError", "PairPlan", "TASKS_PER_THREAD",
           "check_scheduler", "connect", "count_task", "detect", "plan_pair", "run_pairs",
           "split_rows"]
