"""Dask clusters: the scheduler address, the connection, a local cluster, the workers' check.

Shared by both uses of Dask: many pairs (:mod:`.dask_runner`) and the row ranges of one huge pair
(:mod:`.dask_detect`). ``scheduler="local"`` starts a :class:`dask.distributed.LocalCluster` of
worker processes (one thread each) listening on the loopback interface only; with dask-cuda
installed and a GPU present it starts a ``LocalCUDACluster`` instead, one worker per GPU, each
seeing its own GPU as GPU 0. Any other value is the address of a running scheduler
(``tcp://host:8786``), whose workers must have dragon-gpu installed and see the files under the
same paths as the client.

Dask is optional: importing this module needs nothing, and using it without Dask raises a
:class:`~dragon_gpu.errors.UsageError` that says what to install.
"""

from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager
from typing import Callable, Iterator

from ..errors import DragonError, GpuUnavailableError, UsageError
from ..io._decode import usable_cores

__all__ = ["CONNECT_TIMEOUT", "DistributedError", "SCHEMES", "check_scheduler", "connect", "reach"]

#: Seconds to wait for a scheduler, and for its first worker.
CONNECT_TIMEOUT = 30


class DistributedError(DragonError, RuntimeError):
    """The cluster failed the work: a worker died repeatedly on a task, or a task was lost."""


def dask_distributed():
    try:
        import dask.distributed
    except ImportError as exc:
        raise UsageError("{option:scheduler} needs Dask: pip install 'dragon-gpu[dask]' "
                         f"(dask.distributed cannot be imported: {exc})") from None
    return dask.distributed


def _worker_version() -> str:
    from .._version import __version__

    return __version__


@contextmanager
def connect(scheduler: str, workers: int | None = None, device: str = "auto",
            require_gpu: bool = False, warn: Callable[[str], None] | None = None,
            timeout: float = CONNECT_TIMEOUT, reached: bool = False
            ) -> Iterator[tuple[object, str]]:
    """A Dask client for ``scheduler``, and the ``device`` its tasks should use.

    Parameters
    ----------
    scheduler : str
        ``"local"`` to start a cluster on this machine for the duration of the block, or the
        address of a running scheduler.
    workers : int, optional
        Worker processes of a local cluster (default: the usable cores, or every GPU with
        dask-cuda). Refused with an address: a running cluster has its own workers.
    device : str
        The detect ``--device``. With dask-cuda, GPUs named here become the cluster's workers and
        tasks use ``"0"``, each worker's own GPU.
    timeout : float
        Seconds to wait for the scheduler, and then for its first worker.
    reached : bool
        The caller has already :func:`reach`-ed ``scheduler``: skip the second TCP probe.

    Yields
    ------
    (client, device)
    """
    scheduler = check_scheduler(scheduler)
    dd = dask_distributed()
    warn = warn or _stderr
    if workers is not None and workers < 1:
        raise UsageError(f"must be at least 1, got {workers}", param="workers")
    cluster = None
    if scheduler == "local":
        cluster, device = _local_cluster(dd, workers, device, require_gpu, warn)
        target = cluster
    elif workers is not None:
        raise UsageError("{option:workers} applies to {option:scheduler} local; a running "
                         "cluster has its own workers")
    else:
        target = scheduler
    try:
        if cluster is None and not reached:  # reached: the caller's :func:`reach` answered
            reach(scheduler, timeout)
        try:
            client = _client(dd, target, timeout)
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot connect to the Dask scheduler at "
                             f"{scheduler} ({exc})", param="scheduler") from None
        try:
            try:
                client.wait_for_workers(1, timeout=timeout)
            except (TimeoutError, OSError):
                raise UsageError(f"no Dask worker joined the scheduler at "
                                 f"{scheduler} within {timeout:g} s", param="scheduler") from None
            _check_workers(client, scheduler, warn)
            yield client, device
        finally:
            client.close()
    finally:
        if cluster is not None:
            cluster.close()


#: Protocols of Dask scheduler addresses.
SCHEMES = ("tcp", "tls", "ucx", "ws", "wss")
_ADDRESS_HINT = "expected 'local' or a scheduler address such as tcp://10.0.0.5:8786"


def check_scheduler(scheduler) -> str:
    """``scheduler`` stripped, once it is ``"local"`` or a well-formed ``[PROTOCOL://]HOST:PORT``.

    Checked before anything starts, so a typo is one line and not a wait for a connection that
    cannot be made. Needs no Dask.

    Raises
    ------
    UsageError
        For an unknown protocol, a missing host, or a missing or out-of-range port.
    """
    text = str(scheduler).strip()
    if text == "local":
        return text
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "tcp", text  # Dask reads host:port as tcp://host:port
    problem = None
    if not text:
        problem = "it is empty"
    elif scheme.lower() not in SCHEMES:
        problem = f"unknown protocol {scheme!r} (known: {', '.join(SCHEMES)})"
    else:
        host, port = _host_port(rest)
        if not host:
            problem = "no host"
        elif not port:
            problem = "no port (the scheduler's default is 8786)"
        elif not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
            problem = f"the port {port!r} is not a number from 1 to 65535"
    if problem is not None:
        raise UsageError(f"{_ADDRESS_HINT}, got {text!r}: {problem}", param="scheduler")
    return text


def _host_port(rest: str) -> tuple[str, str]:
    rest = rest.rstrip("/")
    if rest.startswith("["):  # [IPv6]:port
        host, _, tail = rest[1:].partition("]")
        return host, tail[1:] if tail.startswith(":") else ""
    host, _, port = rest.rpartition(":")
    return (host, port) if _ else (rest, "")


def reach(scheduler: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """Open (and close) a TCP connection to the scheduler: a refused or silent address is one
    clear line within ``timeout``, before Dask's client (whose failures wait and then print
    from a destructor) is made."""
    import socket

    scheme, sep, rest = scheduler.partition("://")
    if not sep:
        scheme, rest = "tcp", scheduler
    if scheme.lower() not in ("tcp", "tls", "ws", "wss"):
        return  # ucx: not a TCP socket; Dask's own timeout applies
    host, port = _host_port(rest)
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except socket.timeout:
        raise UsageError(f"cannot connect to the Dask scheduler at {scheduler} "
                         f"(no answer within {timeout:g} s)", param="scheduler") from None
    except OSError as exc:
        raise UsageError(f"cannot connect to the Dask scheduler at {scheduler} "
                         f"({exc.strerror or exc})", param="scheduler") from None


def _client(dd, target, timeout: float):
    """``dask.distributed.Client(target)``, quiet when it fails.

    A client whose constructor fails is still closed by its destructor, which waits twice the
    timeout and then prints "Exception ignored ... TimeoutError": nothing was opened, so it is
    marked closed before the error goes on.
    """

    from distributed.utils import sync

    class QuietClient(dd.Client):
        def start(self, **kwargs):
            if self.status != "newly-created":
                return
            try:
                self._loop_runner.start()
                # Dask bounds the connection but not the handshake: a listener that never
                # answers would hold the client forever. The whole start gets the timeout.
                sync(self.loop, self._start, callback_timeout=timeout, **kwargs)
            except BaseException:
                self.status = "closed"
                try:
                    self._loop_runner.stop()
                except Exception:  # pragma: no cover - nothing more to release
                    pass
                raise

    return QuietClient(target, timeout=timeout, set_as_default=False)


def _local_cluster(dd, workers: int | None, device: str, require_gpu: bool, warn):
    from ..engines import parse_device

    spec = parse_device(device)
    if spec != "cpu":
        try:
            from dask_cuda import LocalCUDACluster
        except ImportError:
            LocalCUDACluster = None
        if LocalCUDACluster is not None:
            kwargs = dict(n_workers=workers, threads_per_worker=1, host="127.0.0.1",
                          dashboard_address=None, silence_logs=logging.ERROR)
            if isinstance(spec, list):
                kwargs["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, spec))
            try:
                # Each worker sees its own GPU first, so "0" is that worker's GPU.
                return LocalCUDACluster(**kwargs), "0"
            except Exception as exc:  # no GPU, no driver, NVML missing...
                if require_gpu:
                    raise GpuUnavailableError(f"dask-cuda could not start GPU workers ({exc})")
                if spec != "auto":  # as with detect, only a named GPU's fallback is announced
                    warn(f"dragon-gpu: dask-cuda could not start GPU workers ({exc}); "
                         "using CPU workers")
    n = workers or usable_cores()
    env = {}
    if "DRAGON_GPU_DECODE_THREADS" not in os.environ:
        # n single-threaded workers share the cores: one decode pool each would oversubscribe.
        env["DRAGON_GPU_DECODE_THREADS"] = str(max(1, usable_cores() // n))
    cluster = dd.LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                              dashboard_address=None, silence_logs=logging.ERROR, env=env)
    return cluster, device


def _check_workers(client, scheduler: str, warn) -> None:
    from .._version import __version__

    try:
        versions = client.run(_worker_version)
    except Exception as exc:  # typically ModuleNotFoundError: dragon_gpu is not on the workers
        raise UsageError(f"the Dask workers at {scheduler} cannot run dragon-gpu "
                         f"({type(exc).__name__}: {exc}); install it on every worker",
                         param="scheduler") from None
    others = sorted({v for v in versions.values() if v != __version__})
    if others:
        warn(f"dragon-gpu: Dask workers run dragon-gpu {', '.join(others)}, this client "
             f"{__version__}")


def worker_threads(client) -> int:
    return max(1, sum(client.nthreads().values()))


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)
